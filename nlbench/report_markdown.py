"""The leaderboard's Markdown: the header, one section per table group (metric tables with
their intervals and ties, search and agreement tables, published comparisons, notes), the failed
runs and unreadable records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nlbench import selection, stats
from nlbench.published import PaperTable, Reference, comparisons, paper_table, reference_table
from nlbench.records import Record
from nlbench.report_frames import (
    DETECTION,
    metrics_of,
    options_text,
)  # fmt: skip
from nlbench.run_spec import dataset_label, noise_label_options

FAILED_HEADER = ["run_id", "method", "dataset", "noise", "ratio", "seed", "reason", "epoch"]


@dataclass(frozen=True)
class Published:
    """A suite's published tables and official-code runs, and the recipe each cell is held to
    (`expansion.expected_recipes`: runs whose recipe was overridden are never compared)."""

    papers: list[PaperTable]
    references: list[Reference]
    expected: dict

    def sections(self, frame: pd.DataFrame) -> list[str]:
        """The group's `official code's runs` table, then each published table's lines."""
        found = [reference_table(comparisons(frame, self.references, self.papers, self.expected))]
        found += [paper_table(frame, paper, self.expected) for paper in self.papers]
        return [text for text in found if text]


def leaderboard_markdown(
    ok: list[Record],
    runs: pd.DataFrame,
    failures: list[Record],
    problems: list[tuple[str | Path, str]],
    group_plots: dict[str, list[Path]],
    out_dir: Path,
    published: Published | None = None,
    headline: str | None = None,
    suite: str = "",
) -> str:
    """The whole leaderboard.md: a header that says how to read it, then one section per group
    (with the paper's numbers beside ours where the suite carries them), then `suite` (the
    comparisons across the suite's cells)."""
    if headline is not None:
        runs = runs.assign(headline=headline)
    parts = [_header(ok, runs, failures, problems)]
    for group in sorted(runs["group"].unique()):
        frame = runs[runs.group == group]
        parts.append(f"## {group}")
        searched = frame["trial"].notna().any()
        shown = frame
        if searched:
            shown = selection.chosen_runs(frame)
            parts.append(
                "A hyperparameter search: each cell shows the configuration with the best mean "
                "noisy-validation accuracy over seeds (never the test set); the chosen values "
                "follow the tables."
            )
        tables = metrics_of(shown)
        for metric, title in tables:
            claims = metric != "best_acc"  # nothing is significant on test-selected numbers
            parts.append(f"### {title}\n\n{metric_table(shown, metric, claims)}")
            if metric == tables[0][0]:
                parts.append(_group_notes(shown, recipes=not searched))
        for name in sorted({name for found in shown["more_test"] for name in found}):
            further = shown.assign(more=pd.to_numeric(shown["more_test"].str.get(name)))
            title = f"last-epoch accuracy on the further test set '{name}' (%)"
            parts.append(f"### {title}\n\n{metric_table(further, 'more')}")
        if searched:
            parts.append(_search_tables(frame, shown))
        if shown["best_val_acc"].notna().any():
            parts.append(_agreement_table(frame))
        for key, title in DETECTION.items():
            flagging = shown[shown[key].notna()]
            if not flagging.empty:
                parts.append(f"### {title}\n\n{metric_table(flagging, key)}")
        if published is not None:
            parts.extend(published.sections(frame))
        if group_plots.get(group):
            links = ", ".join(
                f"[{p.name}]({p.relative_to(out_dir).as_posix()})" for p in group_plots[group]
            )
            parts.append(f"Plots: {links}")
    if suite:
        parts.append(suite)
    parts.append("## Failed runs\n\n" + _failed_table(failures))
    parts.append("## Unreadable records\n\n" + _problems_table(problems))
    return "\n\n".join(parts) + "\n"


def _search_tables(frame: pd.DataFrame, chosen: pd.DataFrame) -> str:
    """The chosen hyperparameters per cell, and what test-set selection would have added."""
    columns = column_order(frame)
    picked = selection.chosen_hyperparameters(frame, chosen)
    rows = sorted(chosen["row"].unique())
    body = [[r, *(picked.get((r, c), "") for c in columns)] for r in rows]
    parts = ["### chosen hyperparameters (by noisy-validation accuracy)\n\n"
             + markdown_table(["method", *columns], body)]  # fmt: skip
    gaps = selection.selection_gaps(frame, chosen)
    rows = [
        [g.row, g.column, f"{g.oracle:.2f}", f"{g.noisy_val:.2f}", f"{g.defaults:.2f}",
         f"{g.gap:+.2f}"]
        for g in gaps.sort_values(["row", "column"]).itertuples()
    ]  # fmt: skip
    header = ["method", "noise", "oracle (test-selected config and epoch)",
              "noisy-val-selected", "defaults (noisy-val epoch)", "oracle − noisy-val"]  # fmt: skip
    parts.append(
        "### what test-set selection would add (mean test accuracy %, over seeds)\n\n"
        + markdown_table(header, rows, right=range(2, 6))
    )
    return "\n\n".join(parts)


def _agreement_table(frame: pd.DataFrame) -> str:
    """Kendall's tau between noisy-validation and test accuracy over every run of the group."""
    agreement = selection.rank_agreement(frame)
    rows = [[a.column, f"{a.tau:.3f}", str(a.runs)] for a in agreement.itertuples()]
    return (
        "### does the noisy validation rank as the test set does? (Kendall's τ over runs at "
        "their noisy-val-selected epoch)\n\n"
        + markdown_table(["noise", "τ", "runs"], rows, right=(1, 2))
    )


def metric_table(frame: pd.DataFrame, metric: str, claims: bool = True) -> str:
    """Methods as rows, noise columns as columns, "mean ± std [95 % interval] (n)" cells; in bold
    the column's best mean and every method not shown to be worse than it by more than the ROPE
    (`stats.cells`, paired by seed); the legend under the table names the interval, test, α and
    ROPE (in points; a hundredth of it for the detection tables' fractions). `claims` False
    (test-selected numbers) bolds nothing.

    std is the sample std (ddof=1); with one run it is shown as "–" and no interval, because 0.00
    would claim a spread that was never measured.
    """
    rope = stats.ROPE / 100 if metric in DETECTION else stats.ROPE
    found = stats.cells(frame, metric, claims, rope)
    text = {(c.row, c.column): _cell_text(c) for c in found.itertuples()}
    columns = column_order(frame)
    rows = sorted(frame["row"].unique())
    body = [[row, *(text.get((row, column), "") for column in columns)] for row in rows]
    table = markdown_table(["method", *columns], body, right=range(1, len(columns) + 1))
    return f"{table}\n\n{stats.legend(found, claims, rope)}"


def _cell_text(cell) -> str:
    """`82.59 ± 2.73 [75.8, 89.4] (3)`: the interval one decimal shorter where it is in points."""
    spread = f"{cell.std:.2f}" if cell.n > 1 else "–"
    digits = 1 if abs(cell.mean) >= 1 else 2
    span = f" [{cell.low:.{digits}f}, {cell.high:.{digits}f}]" if cell.interval else ""
    text = f"{cell.mean:.2f} ± {spread}{span} ({cell.n})"
    return f"**{text}**" if cell.tied else text


def _header(ok: list[Record], runs: pd.DataFrame, failures: list[Record], problems: list) -> str:
    """Title, run counts, environment and how to read a cell: the context a number needs."""
    suites = sorted({r.suite for r in ok + failures} - {""})
    env = {
        key: ", ".join(sorted({str(getattr(r.env, key)) for r in ok}))
        for key in ("nlbench_commit", "torch", "device")
    }
    if any(r.env.dirty for r in ok):
        env["nlbench_commit"] += " (with uncommitted changes)"
    scored = (
        runs.dropna(subset=["scored_network"])
        .drop_duplicates(["method", "scored_network"])
        .sort_values(["method", "scored_network"])
    )
    lines = [
        f"# nlbench leaderboard: {', '.join(suites) or 'no runs'}",
        "",
        f"Runs: {len(ok)} finished, {len(failures)} failed; unreadable records: {len(problems)}.",
    ]
    if ok:
        lines.append(
            f"Environment: nlbench {env['nlbench_commit']}; torch {env['torch']}; "
            f"device {env['device']}."
        )
    if not scored.empty:
        pairs = "; ".join(f"{m}: {s}" for m, s in scored[["method", "scored_network"]].values)
        lines.append(f"Scored network: {pairs}.")
    lines += [
        "",
        "Cells: mean ± std [95 % interval of the mean] (n) over seeds of test accuracy (%); std is",
        'the sample std (ddof=1), "–" and no interval when n = 1. **Bold**: the best mean of its',
        "column and every method not shown to be worse than it by more than the ROPE, paired by",
        "seed (the legend under each table names the test); none on test-selected numbers.",
        _headline_sentence(runs),
        "Runs share a cell only when their specs differ in nothing but the seed; a method run",
        "under two recipes gets one row per recipe, named by the hyperparameters that differ.",
    ]
    return "\n".join(lines)


def _headline_sentence(runs: pd.DataFrame) -> str:
    if "headline" in runs and (runs["headline"] == "noisy_val").any():
        return "The headline is the epoch selected by validation accuracy."
    return "The headline is the last epoch."


def _group_notes(frame: pd.DataFrame, recipes: bool = True) -> str:
    """Realised noise per column, and (`recipes`) a note for each method split over several
    recipes; a search's rows are one method each, its chosen values in their own table."""
    columns = column_order(frame)
    realised = frame.groupby("column")["realised_rate"].mean()
    noise = ", ".join(
        f"{c}→{realised[c]:.3f}" if pd.notna(realised[c]) else f"{c}→?" for c in columns
    )
    notes = [f"- realised noise (nominal→realised): {noise}"]
    flipped = frame[frame["majority_flips"] > 0].groupby("column")["majority_flips"].max()
    for column in [c for c in columns if c in flipped.index]:
        notes.append(
            f"- ⚠ majority flip at {column}: in {int(flipped[column])} of {int(frame['classes'].max())} "
            "classes a wrong label outnumbers the true one; no method can be expected to recover them"
        )
    for method, rs in frame.groupby("method")["recipe"].unique().items():
        if recipes and len(rs) > 1:
            notes.append(
                f"- note: {method} ran under {len(rs)} recipes ({'; '.join(sorted(rs))}); "
                "one row per recipe, not merged"
            )
    return "\n".join(notes)


def _failed_table(failures: list[Record]) -> str:
    """Failed runs with enough of the spec to find and rerun them."""
    if not failures:
        return "none"
    body = []
    for rec in failures:
        spec, failure = rec.spec, rec.failure
        ratio = spec.noise.ratio
        body.append(
            [
                rec.run_id,
                spec.method.name,
                dataset_label(spec.dataset),
                spec.noise.model + options_text(noise_label_options(spec.noise)),
                "–" if ratio is None else f"{ratio:g}",
                str(spec.seed),
                failure.reason if failure else "unknown",
                str(failure.epoch) if failure else "–",
            ]
        )
    return markdown_table(FAILED_HEADER, body, right=(4, 5, 7))


def _problems_table(problems: list[tuple[str | Path, str]]) -> str:
    """Records the store could not read: shown so a corrupt file is noticed, not just skipped."""
    if not problems:
        return "none"
    body = [[str(path), problem] for path, problem in sorted(problems, key=lambda p: str(p[0]))]
    return markdown_table(["path", "problem"], body)


def column_order(frame: pd.DataFrame) -> list[str]:
    """Numeric ratios ascending, then label columns (CIFAR-N keys) alphabetically."""
    return list(frame.sort_values("column_rank")["column"].unique())


def markdown_table(header: list[str], body: list[list[str]], right: Sequence[int] = ()) -> str:
    """A pipe table padded to align in a terminal too; `right` columns are right-aligned numbers."""
    escaped = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
    widths = [max(len(row[i]) for row in escaped) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(escaped[0]), rule, *(line(row) for row in escaped[1:])])

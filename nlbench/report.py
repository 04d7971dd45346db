"""Leaderboards (Markdown, CSV) and plots built from stored run records alone.

Reports never rerun anything: they read the records the store hands over, so a leaderboard can be
rebuilt at any time, and the numbers in it are exactly those in `results/`. Runs share a table cell
only when their specs differ in nothing but the seed (`spec.seed`, `spec.noise.seed`); a method that
ran under two recipes gets one row per recipe, labelled by the hyperparameters in which they differ
(`gce q=0.3`), never a merged one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nlbench import plots, selection, stats
from nlbench.config import dataset_label, label_options, noise_label_options
from nlbench.data.noise import majority_flips, realised_transition
from nlbench.published import (
    PaperTable,
    Reference,
    comparisons,
    paper_table,
    reference_table,
)
from nlbench.records import Record

METRICS = (
    ("last_acc", "last-epoch test accuracy (%)"),
    ("mean_last10", "mean test accuracy of the last 10 epochs (%)"),
    ("best_acc", "best epoch (selected on the test set), test accuracy (%)"),
)
VAL_METRIC = (
    "val_selected_acc",
    "epoch selected by validation accuracy (labels a practitioner has: the noisy split, or the "
    "dataset's own validation set), test accuracy (%)",
)
"""Shown only for runs with a noisy validation split; first when the suite's headline is it."""
NETWORKS_METRIC = (
    "mean_last10_networks",
    "mean test accuracy of the last 10 epochs over every network a method trains (%; JoCoR's "
    "rule, both networks; one network: as above)",
)
"""Shown for groups where a method trains several networks side by side."""
SELECTION_COLUMNS = ["trial", "entry", "headline", "best_val_acc", "val_selected_acc"]
KNOWN_SPEC_FIELDS = ("suite", "seed", "dataset", "noise", "method", "selection")
CSV_ORDER = [
    "spec.dataset.name",
    "spec.noise.model",
    "spec.noise.ratio",
    "spec.noise.options.key",
    "spec.method.name",
    "spec.seed",
    "run_id",
]
DETECTION = {
    "detection_precision": "noise detection at the last epoch: precision (flagged samples that are "
    "truly mislabelled)",
    "detection_recall": "noise detection at the last epoch: recall (truly mislabelled samples "
    "flagged)",
}
"""Diagnostics of methods that flag samples as mislabelled (Confident Learning, DivideMix, SOP),
tabulated beside the accuracies."""

RUN_COLUMNS = [
    "run_id",
    "data_id",
    "group",
    "slug",
    "column",
    "ratio",
    "method",
    "dataset_label",
    "noise_model",
    "hparams",
    "seed",
    "realised_rate",
    "majority_flips",
    "classes",
    "scored_network",
    *DETECTION,
    *SELECTION_COLUMNS,
    "transition_estimate",
    "transition_true",
    "more_test",
    *(metric for metric, _ in METRICS),
    "mean_last10_networks",
]


FAILED_HEADER = ["run_id", "method", "dataset", "noise", "ratio", "seed", "reason", "epoch"]


@dataclass(frozen=True)
class Published:
    """A suite's published tables and official-code runs, and the recipe each cell is held to
    (`config.expected_recipes`: runs whose recipe was overridden are never compared)."""

    papers: list[PaperTable]
    references: list[Reference]
    expected: dict

    def sections(self, frame: pd.DataFrame) -> list[str]:
        """The group's `official code's runs` table, then each published table's lines."""
        found = [reference_table(comparisons(frame, self.references, self.papers, self.expected))]
        found += [paper_table(frame, paper, self.expected) for paper in self.papers]
        return [text for text in found if text]


@dataclass(frozen=True)
class ReportPaths:
    """Where `build_report` wrote each artefact, so the CLI can print them and tests open them."""

    markdown: Path
    csv: Path
    plots: list[Path]
    cells: Path | None = None
    seeds_needed: str = ""


def build_report(
    records: list[Record],
    out_dir: Path,
    problems: Sequence[tuple[str | Path, str]] | None = None,
    paper: Sequence[PaperTable] = (),
    expected: dict | None = None,
    headline: str | None = None,
    reference: Sequence[Reference] = (),
    baseline: str = "ce",
) -> ReportPaths:
    """Write leaderboard.md, leaderboard.csv, leaderboard_cells.csv (one row per table cell, its
    interval and tie) and plots/*.png for these records into `out_dir`.

    `records` may hold failed runs as well; `problems` are (path, why) for records the store could
    not read. Failed runs and problems are listed, never silently dropped, because a missing cell
    otherwise looks like a method that was never run. Plots from an earlier report are removed
    first so the folder matches the leaderboard. `headline` ("noisy_val" or "last") is the rule
    the tables lead with where runs have a noisy validation split; None reads it from the records.
    `baseline` is the row every method is counted against in the suite's win/tie/loss table.
    """
    ok = [r for r in records if r.ok]
    failures = sorted((r for r in records if not r.ok), key=lambda r: r.run_id)
    runs = run_frame(ok)
    epochs = epoch_frame(ok, runs)

    out_dir.mkdir(parents=True, exist_ok=True)
    plot_dir = out_dir / "plots"
    plots.clear(plot_dir)
    group_plots = {
        group: plots.group_plots(
            runs[runs.group == group], epochs[epochs.group == group], slug, group, plot_dir
        )
        for group, slug in runs[["group", "slug"]].drop_duplicates().sort_values("group").values
    }

    markdown = out_dir / "leaderboard.md"
    published = Published(list(paper), list(reference), expected or {})
    shown = _shown_runs(runs.assign(headline=headline) if headline is not None else runs)
    suite, suite_plots, seeds_needed = _suite_section(shown, baseline, plot_dir, out_dir)
    text = leaderboard_markdown(
        ok, runs, failures, list(problems or []), group_plots, out_dir, published, headline, suite
    )
    markdown.write_text(text, encoding="utf-8")
    csv = out_dir / "leaderboard.csv"
    long_form(ok + failures).to_csv(csv, index=False)
    cells = out_dir / "leaderboard_cells.csv"
    cell_frame(shown).to_csv(cells, index=False)
    drawn = [p for paths in group_plots.values() for p in paths] + suite_plots
    return ReportPaths(markdown, csv, drawn, cells, seeds_needed)


def run_frame(records: list[Record]) -> pd.DataFrame:
    """One row per finished run, with the table it belongs to (`group`), its column and its row.

    The group is (dataset + options, noise model + options, any other spec field); the column is
    the nominal ratio, or the noise options (e.g. `key=worst`) for real-world noise whose ratio is
    read, not set. Spec fields this module does not know yet still split groups, so a new field
    can never merge runs silently.
    """
    rows = []
    for rec in records:
        spec = rec.spec.model_dump(exclude_none=True)
        final = rec.final.model_dump() if rec.final else {}
        noise = spec["noise"]
        noise_options = noise_label_options(noise)
        ratio = noise.get("ratio")
        numeric = ratio is not None
        dataset = dataset_label(spec["dataset"]) + _options(label_options(spec["dataset"]))
        noise_label = noise["model"] + (_options(noise_options) if numeric else "")
        noise_label += _options({k: v for k, v in spec.items() if k not in KNOWN_SPEC_FIELDS})
        chosen = spec.get("selection")
        if chosen and chosen["split"] == "dataset_val":
            noise_label += " · dataset's val"
        elif chosen:  # the split's seed follows the run's, as the noise seed does
            noise_label += f" · noisy val {chosen['fraction']:.0%}"
        rows.append(
            {
                "run_id": rec.run_id,
                "data_id": rec.data_id,
                "group": f"{dataset} · {noise_label}",
                "slug": _slug(f"{dataset}_{noise_label}"),
                "column": _ratio_label(ratio, noise_options),
                "ratio": float(ratio) if numeric else math.nan,
                "method": spec["method"]["name"],
                "dataset_label": dataset_label(spec["dataset"]),
                "noise_model": noise["model"],
                "hparams": json.dumps(spec["method"]["hparams"], sort_keys=True),
                "seed": spec.get("seed"),
                "realised_rate": rec.noise.realised_rate,
                "majority_flips": len(majority_flips(rec.noise.transition_counts)),
                "classes": len(rec.noise.transition_counts),
                "scored_network": rec.scored_network,
                **{key: _last_diagnostic(rec, key) for key in DETECTION},
                "trial": spec["method"].get("trial"),
                "entry": spec["method"].get("recipe"),
                "headline": (spec.get("selection") or {}).get("headline"),
                "best_val_acc": final.get("best_val_acc"),
                "val_selected_acc": final.get("val_selected_acc"),
                "transition_estimate": rec.estimates.get("transition"),
                "transition_true": realised_transition(rec.noise.transition_counts).tolist(),
                "more_test": dict(rec.epochs[-1].more_test_acc) if rec.epochs else {},
                **{metric: final.get(metric) for metric, _ in METRICS},
                "mean_last10_networks": final.get("mean_last10_networks"),
            }
        )
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    # Same label, other bytes (a data file replaced under its name): never one cell.
    clash = frame.groupby("group")["data_id"].transform("nunique") > 1
    tagged = frame["group"] + " · data " + frame["data_id"].fillna("?")
    frame["group"] = frame["group"].where(~clash, tagged)
    frame["slug"] = frame["slug"].where(~clash, frame["slug"] + "_" + frame["data_id"].fillna("x"))
    numeric = [*(m for m, _ in METRICS), "mean_last10_networks", *DETECTION, "best_val_acc",
               "val_selected_acc"]  # fmt: skip
    for metric in numeric:
        frame[metric] = pd.to_numeric(frame[metric])
    frame["realised_rate"] = pd.to_numeric(frame["realised_rate"])
    frame["recipe"] = recipe_labels(frame)
    searched = frame["entry"].notna()
    frame.loc[searched, "recipe"] = selection.entry_labels(frame[searched])
    frame["row"] = (frame["method"] + " " + frame["recipe"]).str.strip()
    order = sorted(
        frame[["ratio", "column"]].drop_duplicates().itertuples(index=False),
        key=lambda p: (math.isnan(p.ratio), 0.0 if math.isnan(p.ratio) else p.ratio, p.column),
    )
    labels = list(dict.fromkeys(p.column for p in order))
    frame["column_rank"] = frame["column"].map({label: i for i, label in enumerate(labels)})
    return frame


def _last_diagnostic(rec: Record, key: str) -> float | None:
    return rec.epochs[-1].diagnostics.get(key) if rec.epochs else None


def recipe_labels(runs: pd.DataFrame) -> pd.Series:
    """Per run, the hyperparameters in which its method's recipes differ within its table
    (`lr=0.1`, `q=0.3, network=mlp`); "" where the method ran under one recipe there."""
    labels = pd.Series("", index=runs.index, dtype=object)
    for _, part in runs.groupby(["group", "method"]):
        recipes = list(part["hparams"].unique())
        if len(recipes) > 1:
            labels[part.index] = part["hparams"].map(selection.name_recipes(recipes))
    return labels


def epoch_frame(records: list[Record], runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, epoch): test accuracy and whatever diagnostics the method reported.

    Diagnostic columns are prefixed `diag.` because their keys vary by method.
    """
    rows = [
        {
            "run_id": rec.run_id,
            "epoch": ep.epoch,
            "test_acc": ep.test_acc,
            **{f"diag.{k}": v for k, v in ep.diagnostics.items()},
        }
        for rec in records
        for ep in rec.epochs
    ]
    frame = pd.DataFrame(rows, columns=None if rows else ["run_id", "epoch", "test_acc"])
    numeric = [c for c in frame.columns if c == "test_acc" or c.startswith("diag.")]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame.merge(runs[["run_id", "group", "column", "column_rank", "row"]], on="run_id")


def long_form(records: list[Record]) -> pd.DataFrame:
    """Every run as one flat row: spec, final metrics, noise, timing and last-epoch diagnostics.

    Column names are dotted paths into the record (`spec.method.hparams.lr`, `final.last_acc`),
    so a reader can go from a CSV column back to the JSON without a lookup table.
    """
    rows = []
    for rec in records:
        rows.append(
            {
                "run_id": rec.run_id,
                "suite": rec.suite,
                "status": rec.status,
                "scored_network": rec.scored_network,
                "spec": rec.spec.model_dump(exclude_none=True),
                "final": rec.final.model_dump() if rec.final else {},
                "failure": rec.failure.model_dump() if rec.failure else {},
                "noise": {"realised_rate": rec.noise.realised_rate},
                "epochs_run": len(rec.epochs),
                "wall_seconds": rec.wall_seconds,
                "images_per_second": rec.images_per_second,
                "diagnostics": rec.epochs[-1].diagnostics if rec.epochs else {},
                "env": rec.env.model_dump(),
            }
        )
    if not rows:
        return pd.DataFrame(columns=["run_id"])
    frame = pd.json_normalize(rows, sep=".").convert_dtypes()
    top = list(rows[0])
    frame = frame[sorted(frame.columns, key=lambda c: (top.index(c.split(".")[0]), c))]
    order = [c for c in CSV_ORDER if c in frame.columns]
    return frame.sort_values(order, kind="stable", ignore_index=True)


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
        tables = _metrics(shown)
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


def _metrics(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The tables a group gets, headline first: with a noisy validation split, the epoch it
    selects (first, unless the suite's headline is the last epoch), then the others."""
    tables = list(METRICS)
    if (frame["mean_last10_networks"].fillna(frame["mean_last10"]) != frame["mean_last10"]).any():
        tables.insert(2, NETWORKS_METRIC)
    if not frame["val_selected_acc"].notna().any():
        return tables
    if (frame["headline"] == "last").all():
        return [tables[0], VAL_METRIC, *tables[1:]]
    return [VAL_METRIC, *tables]


def _search_tables(frame: pd.DataFrame, chosen: pd.DataFrame) -> str:
    """The chosen hyperparameters per cell, and what test-set selection would have added."""
    columns = _column_order(frame)
    picked = selection.chosen_hyperparameters(frame, chosen)
    rows = sorted(chosen["row"].unique())
    body = [[r, *(picked.get((r, c), "") for c in columns)] for r in rows]
    parts = ["### chosen hyperparameters (by noisy-validation accuracy)\n\n"
             + _markdown_table(["method", *columns], body)]  # fmt: skip
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
        + _markdown_table(header, rows, right=range(2, 6))
    )
    return "\n\n".join(parts)


def _agreement_table(frame: pd.DataFrame) -> str:
    """Kendall's tau between noisy-validation and test accuracy over every run of the group."""
    agreement = selection.rank_agreement(frame)
    rows = [[a.column, f"{a.tau:.3f}", str(a.runs)] for a in agreement.itertuples()]
    return (
        "### does the noisy validation rank as the test set does? (Kendall's τ over runs at "
        "their noisy-val-selected epoch)\n\n"
        + _markdown_table(["noise", "τ", "runs"], rows, right=(1, 2))
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
    columns = _column_order(frame)
    rows = sorted(frame["row"].unique())
    body = [[row, *(text.get((row, column), "") for column in columns)] for row in rows]
    table = _markdown_table(["method", *columns], body, right=range(1, len(columns) + 1))
    return f"{table}\n\n{stats.legend(found, claims, rope)}"


def _cell_text(cell) -> str:
    """`82.59 ± 2.73 [75.8, 89.4] (3)`: the interval one decimal shorter where it is in points."""
    spread = f"{cell.std:.2f}" if cell.n > 1 else "–"
    digits = 1 if abs(cell.mean) >= 1 else 2
    span = f" [{cell.low:.{digits}f}, {cell.high:.{digits}f}]" if cell.interval else ""
    text = f"{cell.mean:.2f} ± {spread}{span} ({cell.n})"
    return f"**{text}**" if cell.tied else text


def _shown_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per group, the runs its tables show: a search's chosen configurations, else every run."""
    parts = [
        selection.chosen_runs(frame) if frame["trial"].notna().any() else frame
        for _, frame in runs.groupby("group")
    ]
    return pd.concat(parts) if parts else runs


def cell_frame(shown: pd.DataFrame) -> pd.DataFrame:
    """Every table cell of every group and selection rule at full precision (leaderboard_cells.csv):
    n, mean, std, the interval and its kind, and the tie with the column's best with its evidence."""
    parts = [
        stats.cells(frame, metric, claims=metric != "best_acc").assign(group=group, metric=metric)
        for group, frame in shown.groupby("group")
        for metric, _ in _metrics(frame)
    ]
    columns = ["group", "metric", *stats.CELL_COLUMNS]
    return pd.concat(parts)[columns] if parts else pd.DataFrame(columns=columns)


def _suite_section(
    shown: pd.DataFrame, baseline: str, plot_dir: Path, out_dir: Path
) -> tuple[str, list[Path], str]:
    """Across the suite's (dataset, noise, ratio) cells, per selection rule but the oracle: average
    ranks, wins/ties/losses against `baseline`, Friedman's test and a critical-difference diagram;
    then, for the headline rule, the seeds its closest pairs need. Returns the Markdown, the
    diagrams and the one-line seeds-needed summary."""
    rules = [(m, title) for m, title in _metrics(shown) if m != "best_acc"] if len(shown) else []
    if not rules:
        return "", [], ""
    parts, drawn = ["## Across the suite"], []
    cells = shown.groupby(["group", "column"]).ngroups
    for metric, title in rules:
        parts.append(f"### ranks over the {cells} (dataset, noise, ratio) cells: {title}")
        ranking = stats.ranking(shown, metric)
        record = stats.win_tie_loss(shown, metric, baseline)
        rows = sorted(shown.dropna(subset=[metric])["row"].unique())
        if ranking is not None:
            rows = [*ranking.ranks.index, *(r for r in rows if r not in ranking.ranks.index)]
        body = []
        for row in rows:
            rank = f"{ranking.ranks[row]:.2f}" if ranking and row in ranking.ranks else "–"
            if row == baseline:
                versus = "(baseline)"
            elif row in record.index:
                w, t, lost, untested = record.loc[row]
                versus = f"{w} / {t} / {lost}" + (f" ({untested} untested)" if untested else "")
            else:
                versus = "–"
            body.append([row, rank, versus])
        header = ["method", "average rank (1 = best)", f"vs {baseline}: wins / ties / losses"]
        parts.append(_markdown_table(header, body, right=(1, 2)))
        parts.append(_ranking_note(ranking, baseline, record.empty))
        if ranking is not None:
            path = plots.critical_difference(ranking, title, plot_dir / f"cd_{metric}.png")
            drawn.append(path)
            parts.append(
                f"Critical-difference diagram: [{path.name}]({path.relative_to(out_dir).as_posix()})"
            )
    metric, title = rules[0]
    pairs = stats.closest_pairs(shown, metric)
    ran = int(shown.groupby(["group", "column", "row"])["seed"].nunique().max())
    line = stats.seeds_needed_line(pairs, ran)
    if line:
        parts.append(f"### seeds needed by the closest pairs: {title}\n\n" + _pairs_table(pairs))
        parts.append(f"Seeds needed: {line}.")
    return "\n\n".join(parts), drawn, line


def _ranking_note(ranking: stats.Ranking | None, baseline: str, no_baseline: bool) -> str:
    """What the rank table claims: Friedman's verdict, Nemenyi's CD, the win/tie/loss rule."""
    notes = []
    if ranking is None:
        notes.append("No Friedman test: it needs at least 2 cells and 3 methods run in every one.")
    else:
        verdict = (
            f"< {stats.ALPHA:g}: pairs further apart than Nemenyi's critical difference "
            f"({ranking.cd:.2f} ranks) differ"
            if ranking.nemenyi is not None
            else f"≥ {stats.ALPHA:g}: the ranks are not shown to differ, no pair is claimed"
        )
        notes.append(
            f"Friedman's test over {len(ranking.means)} cells and "
            f"{len(ranking.ranks)} methods: p = {ranking.friedman_p:.3g} {verdict}."
        )
        if ranking.left_out:
            notes.append(f"Not ranked (missing from some cell): {', '.join(ranking.left_out)}.")
    if no_baseline:
        notes.append(
            f"No win/tie/loss: the baseline '{baseline}' (the suite's `baseline:`) is in no cell."
        )
    else:
        notes.append(
            f"A win or loss is a gap to {baseline} beyond the ROPE of {stats.ROPE:g} in "
            "one cell, by the tables' paired test (Holm over the cell's comparisons); "
            "untested: fewer than 2 paired seeds."
        )
    return " ".join(notes)


def _pairs_table(pairs: pd.DataFrame) -> str:
    """Per cell, the best mean against the runner-up and the seeds their gap would need."""
    body = []
    for p in pairs.itertuples():
        gap = f"{p.gap:+.2f} ± {p.sd:.2f}" if p.n > 1 else "–"
        if p.n < 2:
            needed = "– (fewer than 2 paired seeds)"
        elif p.seeds is None or pd.isna(p.seeds):
            needed = "never (inside the ROPE)"
        elif p.seeds == float("inf"):
            needed = f"> {stats.MAX_SEEDS}"
        else:
            needed = f"{p.seeds:g}"
        body.append([p.group, p.column, p.best, p.second, gap, str(p.n), needed])
    header = [
        "table",
        "noise",
        "best",
        "runner-up",
        "paired gap (mean ± sd)",
        "seeds",
        f"seeds for {stats.POWER:.0%} power",
    ]
    return _markdown_table(header, body, right=(4, 5, 6))


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
    columns = _column_order(frame)
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
        ratio = spec.noise["ratio"]
        body.append(
            [
                rec.run_id,
                spec.method["name"],
                dataset_label(spec.dataset),
                spec.noise["model"] + _options(noise_label_options(spec.noise)),
                "–" if ratio is None else f"{ratio:g}",
                str(spec.seed),
                failure.reason if failure else "unknown",
                str(failure.epoch) if failure else "–",
            ]
        )
    return _markdown_table(FAILED_HEADER, body, right=(4, 5, 7))


def _problems_table(problems: list[tuple[str | Path, str]]) -> str:
    """Records the store could not read: shown so a corrupt file is noticed, not just skipped."""
    if not problems:
        return "none"
    body = [[str(path), problem] for path, problem in sorted(problems, key=lambda p: str(p[0]))]
    return _markdown_table(["path", "problem"], body)


def _column_order(frame: pd.DataFrame) -> list[str]:
    """Numeric ratios ascending, then label columns (CIFAR-N keys) alphabetically."""
    return list(frame.sort_values("column_rank")["column"].unique())


def _ratio_label(ratio: float | None, options: dict | None) -> str:
    """`0.2` for a set ratio; the options (`key=worst`) when the noise, not us, decides the rate."""
    if ratio is not None:
        return f"{ratio:g}"
    return _options(options).strip(" ()") or "–"


def _options(options: dict | None) -> str:
    """` (a=1, b=x)` for non-empty options, sorted so equal options always print alike."""
    if not options:
        return ""
    return " (" + ", ".join(f"{k}={options[k]}" for k in sorted(options)) + ")"


def _slug(text: str) -> str:
    """A file-name-safe form of a group label, e.g. `digits_sym` or `cifar10_asym_variant=true`."""
    kept = "".join(c if c.isalnum() or c in ".=-_" else "-" for c in text)
    return "-".join(part for part in kept.split("-") if part).replace("-_", "_").replace("_-", "_")


def _markdown_table(header: list[str], body: list[list[str]], right: Sequence[int] = ()) -> str:
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

"""Leaderboards (Markdown, CSV) and plots built from stored run records alone.

Reports never rerun anything: they read the records the store hands over, so a leaderboard can be
rebuilt at any time, and the numbers in it are exactly those in `results/`. Runs share a table cell
only when their specs differ in nothing but the seed (`spec.seed`, `spec.noise.seed`); a method that
ran under two recipes gets one row per recipe, labelled by the hyperparameters in which they differ
(`gce q=0.3`), never a merged one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nlbench import plots, stats
from nlbench.published import PaperTable, Reference
from nlbench.records import Record
from nlbench.report_frames import (
    cell_frame,
    epoch_frame,
    long_form,
    metrics_of,
    run_frame,
    shown_runs,
)  # fmt: skip
from nlbench.report_markdown import Published, leaderboard_markdown, markdown_table


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
    shown = shown_runs(runs.assign(headline=headline) if headline is not None else runs)
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


def _suite_section(
    shown: pd.DataFrame, baseline: str, plot_dir: Path, out_dir: Path
) -> tuple[str, list[Path], str]:
    """Across the suite's (dataset, noise, ratio) cells, per selection rule but the oracle: average
    ranks, wins/ties/losses against `baseline`, Friedman's test and a critical-difference diagram;
    then, for the headline rule, the seeds its closest pairs need. Returns the Markdown, the
    diagrams and the one-line seeds-needed summary."""
    rules = [(m, title) for m, title in metrics_of(shown) if m != "best_acc"] if len(shown) else []
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
        parts.append(markdown_table(header, body, right=(1, 2)))
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
    return markdown_table(header, body, right=(4, 5, 6))

"""The report's figures: accuracy vs noise, per-epoch curves, selection diagnostics, and the
noise transition matrices a method estimated beside the realised ones.

Figures are built with matplotlib's object API (`Figure`, saved through the Agg canvas) rather
than pyplot, so reports need no display, set no global backend, and leak no open figures when a
worker builds many. Each function takes the report's frames for one group and returns the path it
wrote, or None when the group has nothing to show.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nlbench.selection import rank_agreement
from nlbench.stats import ALPHA, Ranking

PREFIXES = ("acc_vs_noise_", "curves_", "diagnostics_", "transition_", "val_vs_test_", "cd_")
DIAGNOSTIC_ORDER = (
    "selection_precision",
    "selection_recall",
    "fraction_selected",
    "relabel_accuracy",
    "detection_precision",
    "detection_recall",
    "fraction_flagged",
    "transition_error",
)
DPI = 100


def clear(plot_dir: Path) -> None:
    """Remove figures of an earlier report, so a group that is gone leaves no stale plot behind."""
    if plot_dir.is_dir():
        for path in plot_dir.glob("*.png"):
            if path.name.startswith(PREFIXES):
                path.unlink()


def group_plots(
    runs: pd.DataFrame, epochs: pd.DataFrame, slug: str, title: str, plot_dir: Path
) -> list[Path]:
    """Every figure one leaderboard group gets, written as `plot_dir/<kind>_<slug>.png`."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    colours = {row: f"C{i % 10}" for i, row in enumerate(sorted(runs["row"].unique()))}
    written = [
        acc_vs_noise(runs, colours, title, plot_dir / f"acc_vs_noise_{slug}.png"),
        curves(epochs, colours, title, plot_dir / f"curves_{slug}.png"),
        diagnostics(epochs, colours, title, plot_dir / f"diagnostics_{slug}.png"),
        transitions(runs, title, plot_dir / f"transition_{slug}.png"),
        val_vs_test(runs, title, plot_dir / f"val_vs_test_{slug}.png"),
    ]
    return [path for path in written if path is not None]


def acc_vs_noise(
    runs: pd.DataFrame, colours: dict[str, str], title: str, path: Path
) -> Path | None:
    """Last-epoch accuracy against the nominal ratio, one line per method, a band for ± std.

    Skipped when no run has a numeric ratio (CIFAR-N keys have no order to draw a line along).
    """
    numeric = runs[runs["ratio"].notna()]
    if numeric.empty:
        return None
    stats = numeric.groupby(["row", "ratio"])["last_acc"].agg(["mean", "std"]).reset_index()
    fig = _figure(1, 1.45)
    ax = fig.add_subplot()
    for row, line in stats.groupby("row"):
        spread = line["std"].fillna(0.0)
        # Error bars show the spread at every ratio, a lone one included; the band joins them.
        ax.errorbar(line["ratio"], line["mean"], yerr=spread, marker="o", capsize=4,
                    color=colours[row], label=row)  # fmt: skip
        ax.fill_between(line["ratio"], line["mean"] - spread, line["mean"] + spread,
                        color=colours[row], alpha=0.15, linewidth=0)  # fmt: skip
    ax.set_xlabel("nominal noise ratio")
    ax.set_ylabel("last-epoch test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(title="method", fontsize="small")
    _title(fig, f"{title}: accuracy vs noise (mean ± std over seeds)")
    fig.savefig(path, dpi=DPI)
    return path


def curves(epochs: pd.DataFrame, colours: dict[str, str], title: str, path: Path) -> Path | None:
    """Test accuracy per epoch, mean over seeds, one subplot per noise column."""
    if epochs.empty or epochs["test_acc"].isna().all():
        return None
    columns = _columns(epochs)
    wide = min(len(columns), 3)
    tall = math.ceil(len(columns) / wide)
    fig = _figure(tall, wide)
    axes = [fig.add_subplot(tall, wide, i + 1) for i in range(len(columns))]
    for ax, column in zip(axes, columns):
        mean = epochs[epochs["column"] == column].groupby(["row", "epoch"])["test_acc"].mean()
        _plot_lines(ax, mean, colours)
        ax.set_title(f"noise {column}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    _legend(axes)
    _title(fig, f"{title}: test accuracy per epoch (mean over seeds)")
    fig.savefig(path, dpi=DPI)
    return path


def diagnostics(
    epochs: pd.DataFrame, colours: dict[str, str], title: str, path: Path
) -> Path | None:
    """Why a method wins: its selection precision/recall, fraction selected, relabel accuracy.

    One row of subplots per diagnostic present, one column per noise column; skipped when no run
    of the group reported diagnostics.
    """
    present = {
        c.removeprefix("diag.")
        for c in epochs.columns
        if c.startswith("diag.") and epochs[c].notna().any()
    }
    if not present:
        return None
    keys = [k for k in DIAGNOSTIC_ORDER if k in present] + sorted(present - set(DIAGNOSTIC_ORDER))
    columns = _columns(epochs)
    fig = _figure(len(keys), len(columns))
    grid = fig.subplots(len(keys), len(columns), squeeze=False, sharex=True, sharey="row")
    for (i, key), (j, column) in itertools.product(enumerate(keys), enumerate(columns)):
        ax = grid[i, j]
        subset = epochs[epochs["column"] == column]
        _plot_lines(ax, subset.groupby(["row", "epoch"])[f"diag.{key}"].mean().dropna(), colours)
        ax.set_title(f"{key.replace('_', ' ')}, noise {column}", fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.label_outer()
    _legend(list(grid.flat))
    _title(fig, f"{title}: method diagnostics per epoch (mean over seeds)")
    fig.savefig(path, dpi=DPI)
    return path


def transitions(runs: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Heat-maps of the estimated noise transition matrix T[clean, noisy] (mean over seeds) of
    every method that estimates one, under the realised T of the same noise column.

    One column of subplots per noise column; the first row is the realised T, one row per
    estimating method below it, titled with its mean absolute error. Skipped when no run of the
    group estimated T.
    """
    estimating = runs[runs["transition_estimate"].notna()]
    if estimating.empty:
        return None
    rows = sorted(estimating["row"].unique())
    columns = list(estimating.sort_values("column_rank")["column"].unique())
    fig = _figure(len(rows) + 1, len(columns) * 0.9)
    grid = fig.subplots(len(rows) + 1, len(columns), squeeze=False)
    image = None
    for j, column in enumerate(columns):
        here = estimating[estimating["column"] == column]
        truth = np.mean(np.array(here["transition_true"].tolist(), dtype=float), axis=0)
        image = _heat_map(grid[0, j], truth, f"realised T, noise {column}")
        for i, row in enumerate(rows, start=1):
            mine = here[here["row"] == row]["transition_estimate"].tolist()
            ax = grid[i, j]
            if not mine:
                ax.set_axis_off()
                continue
            estimate = np.mean(np.array(mine, dtype=float), axis=0)
            error = float(np.abs(estimate - truth).mean())
            _heat_map(ax, estimate, f"{row}: estimated T\n(mean |error| {error:.3f})")
    fig.colorbar(image, ax=list(grid.flat), shrink=0.6, label="P(noisy label | clean label)")
    _title(fig, f"{title}: noise transition matrices (rows: clean class; mean over seeds)")
    fig.savefig(path, dpi=DPI)
    return path


def val_vs_test(runs: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Test accuracy against noisy-validation accuracy, one point per run at its
    noisy-validation-selected epoch (every method, trial and seed), one panel per noise column,
    Kendall's tau in each title. Skipped without a noisy validation split."""
    scored = runs.dropna(subset=["best_val_acc", "val_selected_acc"])
    if scored.empty:
        return None
    columns = list(scored.sort_values("column_rank")["column"].unique())
    methods = sorted(scored["method"].unique())
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig = _figure(1, len(columns))
    grid = fig.subplots(1, len(columns), squeeze=False)
    for ax, column in zip(grid[0], columns):
        here = scored[scored["column"] == column]
        for method in methods:
            mine = here[here["method"] == method]
            ax.scatter(mine["best_val_acc"], mine["val_selected_acc"], s=14, alpha=0.7,
                       color=colours[method], label=method)  # fmt: skip
        tau = float(rank_agreement(here)["tau"].iloc[0])
        ax.set_title(
            f"noise {column}: Kendall's τ = {tau:.2f} ({len(here)} runs)", fontsize="medium"
        )
        ax.set_xlabel("noisy-validation accuracy (%)")
        ax.set_ylabel("test accuracy (%) at that epoch")
        ax.grid(alpha=0.3)
    _legend(list(grid.flat))
    _title(fig, f"{title}: does the noisy validation rank runs as the test set does?")
    fig.savefig(path, dpi=DPI)
    return path


def critical_difference(ranking: Ranking, title: str, path: Path) -> Path:
    """The critical-difference diagram of a suite: average ranks on an axis (1 = best, left), and
    a bar under every group of methods that Nemenyi's test does not tell apart (one bar over all
    when Friedman's test does not reject). Drawn by scikit-posthocs on this module's own figure;
    its labels sit outside the axes, so the margins are sized to the longest one."""
    import scikit_posthocs

    path.parent.mkdir(parents=True, exist_ok=True)
    label = max(len(str(row)) for row in ranking.ranks.index) + 7  # "name (1.25)"
    side = 0.085 * label + 0.2  # inches
    width = 4.5 + 2 * side
    fig = Figure(figsize=(width, 1.7 + 0.32 * len(ranking.ranks)))
    ax = fig.add_subplot()
    scikit_posthocs.critical_difference_diagram(
        ranking.ranks,
        ranking.significance(),
        ax=ax,
        alpha=ALPHA,
        cd=ranking.cd if ranking.nemenyi is not None else None,
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    verdict = f"Nemenyi CD = {ranking.cd:.2f}" if ranking.nemenyi is not None else "no pair differs"
    _title(
        fig,
        f"average rank over {len(ranking.means)} cells, {title} (Friedman p = "
        f"{ranking.friedman_p:.3g}; {verdict})",
    )
    top = 1 - 1.0 / fig.get_figheight()
    fig.subplots_adjust(left=side / width, right=1 - side / width, top=top, bottom=0.03)
    fig.savefig(path, dpi=DPI)
    return path


def _heat_map(ax, matrix: np.ndarray, title: str):
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("noisy label")
    ax.set_ylabel("clean label")
    return image


def _columns(epochs: pd.DataFrame) -> list[str]:
    """Noise columns in leaderboard order (the report ranks them: ratios ascending, then labels)."""
    return list(epochs.sort_values("column_rank")["column"].unique())


def _plot_lines(ax, mean: pd.Series, colours: dict[str, str]) -> None:
    """One line per method from a (row, epoch)-indexed series of per-epoch means."""
    for row, line in mean.groupby(level="row"):
        ax.plot(line.index.get_level_values("epoch"), line.values, color=colours[row], label=row)


def _figure(rows: int, columns: float) -> Figure:
    """A figure sized so each subplot stays readable however many noise columns a group has, laid
    out by matplotlib's constrained layout so titles, labels and legends never overlap or clip."""
    return Figure(figsize=(4.5 * columns, 3.4 * rows + 0.8), layout="constrained")


def _title(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to the figure's width (a one-column figure is narrow)."""
    width = fig.get_figwidth()
    fig.suptitle(textwrap.fill(text, max(30, int(width * 10))), fontsize="large")


def _legend(axes: list) -> None:
    """One legend, on the first subplot: every subplot uses the same colour for a method."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        labels = sorted(handles)
        axes[0].legend([handles[k] for k in labels], labels, title="method", fontsize="small")

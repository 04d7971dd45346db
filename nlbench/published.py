"""Published numbers beside ours: a paper suite's `paper:` table, and the report's `paper` / `Δ`.

A benchmark is believed when its numbers can be held against the papers'. A paper suite carries
the table its paper (or official README) published, keyed by dataset label, noise model (ours,
which names the convention: `sym` is DivideMix's all-classes draw, `sym_flip` Co-teaching's
other-class flip), nominal ratio and method. The leaderboard shows `paper` and `Δ = ours - paper`
only where the comparison is like for like: the same dataset, noise convention and ratio, the
metric that matches the paper's epoch rule (`last_acc`, `mean_last10`, `best_acc`), and runs made
with the suite's own recipe. Everywhere else it says why it shows no Δ. A number whose source is
weaker (one secondary source, say) goes under `unverified`: shown, labelled so, never given a Δ.

Beside the paper, a suite can carry `reference:` runs of the official code under the same
protocol (repository, commit, command line, device, seeds, the number exactly as that code prints
it). The report then shows, per cell, ours / official run / paper, Δ to each, and whether the
difference to the official runs is inside the seed spread of both sides.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Metric = Literal["last_acc", "mean_last10", "mean_last10_networks", "best_acc"]
Results = dict[str, dict[str, dict[float, dict[str, float]]]]
"""dataset label -> noise model -> nominal ratio -> method -> published test accuracy (%)."""


class PaperTable(BaseModel):
    """One of a suite's `paper:` tables (one per epoch rule the paper reports)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    metric: Metric | None = None
    """Our metric that equals the paper's epoch rule; None when the source does not say."""
    note: str = ""
    results: Results = Field(default_factory=dict)
    """Numbers from the paper's text or the official README, or that two independent sources
    agree on: compared with ours (Δ)."""
    unverified: Results = Field(default_factory=dict)
    """Numbers from a weaker source: shown as an unverified reference, never given a Δ."""

    def lookup(self, dataset: str, model: str) -> dict[float, dict[str, float]]:
        return self.results.get(dataset, {}).get(model, {})

    def value(self, dataset: str, model: str, ratio: float, method: str) -> tuple[float, bool]:
        """The published number of one cell and whether it is verified; (nan, False) if none."""
        for table, verified in ((self.results, True), (self.unverified, False)):
            found = table.get(dataset, {}).get(model, {}).get(ratio, {}).get(method)
            if found is not None:
                return found, verified
        return math.nan, False


def paper_table(
    frame: pd.DataFrame, paper: PaperTable, expected: dict[tuple[str, str, float | None, str], str]
) -> str | None:
    """The `paper` / `Δ` lines of one leaderboard group, or None when the paper has no numbers
    for its dataset and noise model."""
    dataset, model = frame["dataset_label"].iloc[0], frame["noise_model"].iloc[0]
    published = paper.lookup(dataset, model)
    doubtful = paper.unverified.get(dataset, {}).get(model, {})
    if not published and not doubtful:
        return None
    lines, reasons = [], set()
    for ratio in sorted(published):
        for method, value in sorted(published[ratio].items()):
            runs = _own_runs(frame, expected, dataset, model, ratio, method)
            cell = f"- {method} at {ratio:g}: paper {value:.2f}"
            if paper.metric is None:
                reasons.add("the source does not say which epoch it reports")
            elif runs.empty:
                cell += ", Δ – (no run with the suite's own recipe)"
            else:
                ours = runs[paper.metric].mean()
                if not math.isnan(ours):
                    cell += f", ours {ours:.2f} (n={len(runs)}), Δ {ours - value:+.2f}"
            lines.append(cell)
    for ratio in sorted(doubtful):
        for method, value in sorted(doubtful[ratio].items()):
            runs = _own_runs(frame, expected, dataset, model, ratio, method)
            cell = f"- {method} at {ratio:g}: unverified reference {value:.2f}"
            if paper.metric is not None and not runs.empty:
                cell += f", ours {runs[paper.metric].mean():.2f} (n={len(runs)})"
            lines.append(cell + ", no Δ")
    title = f"### published numbers ({paper.source}"
    title += f"; compared with our {paper.metric})" if paper.metric else ")"
    notes = [f"No Δ: {reason}." for reason in sorted(reasons)]
    if doubtful:
        notes.append("An unverified reference comes from a weaker source (one secondary copy of "
                     "the table, say): shown to orient, never compared.")  # fmt: skip
    if paper.note:
        notes.append(paper.note)
    return "\n".join([title, "", *lines, *([""] + notes if notes else [])])


def _own_runs(
    frame: pd.DataFrame,
    expected: dict[tuple[str, str, float | None, str], str],
    dataset: str,
    model: str,
    ratio: float,
    method: str,
    hparams: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The group's runs of `method` at `ratio` made with the suite's own recipe for that cell
    (with `hparams` changed, for an official run made with other values)."""
    runs = frame[(frame["method"] == method) & (frame["ratio"].sub(ratio).abs() < 1e-9)]
    own = expected.get((dataset, model, ratio, method))
    if own is None:
        return runs.iloc[0:0]
    if hparams:
        own = json.dumps(json.loads(own) | hparams, sort_keys=True)
    return runs[runs["hparams"] == own]


class ReferenceRun(BaseModel):
    """One seed of the official code: its number as printed, or where it diverged."""

    model_config = ConfigDict(extra="forbid")

    seed: int
    value: float | None = None
    """The metric exactly as the official code prints it; None for a run that diverged."""
    diverged_epoch: int | None = None
    """The first epoch whose loss or accuracy went non-finite or fell to chance for good."""
    last_finite: float | None = None
    """The run's last accuracy (%) before it diverged."""
    wall_seconds: float | None = None


class Reference(BaseModel):
    """Runs of the official code for one cell, under the suite's protocol.

    `metric` is our metric that equals what the code prints (`printed`); `hparams` are the values
    of ours those runs used where they differ from the suite's recipe for the cell (JoCoR's README
    lambda 0.65 at 80 %), so they are held against our runs with the same values, or none.
    """

    model_config = ConfigDict(extra="forbid")

    repository: str
    commit: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    command: str
    device: str
    printed: str
    metric: Metric
    dataset: str
    noise: str
    ratio: float
    method: str
    hparams: dict[str, Any] = Field(default_factory=dict)
    runs: list[ReferenceRun] = Field(min_length=1)
    note: str = ""

    def finished(self) -> list[float]:
        return [run.value for run in self.runs if run.value is not None]

    def diverged(self) -> list[ReferenceRun]:
        return [run for run in self.runs if run.value is None]


@dataclass(frozen=True)
class Comparison:
    """One cell: ours, the official runs and the paper, side by side."""

    reference: Reference
    ours: list[float]
    seeds: list[int]
    official: list[float]
    paper: float
    paper_verified: bool

    @property
    def delta_official(self) -> float:
        return _mean(self.ours) - _mean(self.official)

    @property
    def delta_paper(self) -> float:
        return _mean(self.ours) - self.paper if self.paper_verified else math.nan

    @property
    def spread(self) -> float:
        """The sum of both sides' sample standard deviations over seeds (nan below 2 seeds)."""
        return _std(self.ours) + _std(self.official)

    @property
    def verdict(self) -> str:
        """`inside` when |Δ to the official runs| is within the combined seed spread."""
        if math.isnan(self.spread) or math.isnan(self.delta_official):
            return "–"
        return "inside" if abs(self.delta_official) <= self.spread else "outside"


def comparisons(
    frame: pd.DataFrame,
    references: list[Reference],
    papers: list[PaperTable],
    expected: dict[tuple[str, str, float | None, str], str],
) -> list[Comparison]:
    """Every reference cell of this leaderboard group, with our runs of the matching recipe."""
    dataset, model = frame["dataset_label"].iloc[0], frame["noise_model"].iloc[0]
    found = []
    for ref in references:
        if (ref.dataset, ref.noise) != (dataset, model):
            continue
        args = (dataset, model, ref.ratio, ref.method)
        runs = _own_runs(frame, expected, *args, hparams=ref.hparams)
        runs = runs[runs[ref.metric].notna()]
        ours, seeds = [float(v) for v in runs[ref.metric]], [int(v) for v in runs["seed"]]
        tables = [p for p in papers if p.metric == ref.metric] or papers
        paper, verified = math.nan, False
        for table in tables:
            paper, verified = table.value(*args)
            if not math.isnan(paper):
                break
        found.append(Comparison(ref, ours, sorted(seeds), ref.finished(), paper, verified))
    return found


def reference_table(comparisons_: list[Comparison]) -> str | None:
    """The `official code's runs` section of one leaderboard group (None without references)."""
    if not comparisons_:
        return None
    head = ["method", "ratio", "values", "metric", "ours", "official run", "paper",
            "Δ official", "Δ paper", "spread", "Δ within spread"]  # fmt: skip
    rows = [_comparison_row(c) for c in comparisons_]
    sources = sorted({f"{c.reference.repository}@{c.reference.commit[:7]}" for c in comparisons_})
    legend = (
        "ours and official: mean ± sample std over seeds (n); a diverged official run is listed "
        "with its epoch and last finite accuracy and left out of the mean. Δ = ours − the other; "
        "spread = the sum of both sides' seed std; 'inside' when |Δ official| ≤ spread. "
        "Δ paper only for a verified published number."
    )
    table = "\n".join(
        ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        + ["| " + " | ".join(row) + " |" for row in rows]
    )
    title = f"### official code's runs ({', '.join(sources)})"
    return f"{title}\n\n{table}\n\n{legend}"


def _comparison_row(c: Comparison) -> list[str]:
    ref = c.reference
    return [ref.method, f"{ref.ratio:g}", recipe_values(ref), ref.metric, summary(c.ours),
            official_cell(c), paper_cell(c), signed(c.delta_official), signed(c.delta_paper),
            plain(c.spread), c.verdict]  # fmt: skip


def official_cell(c: Comparison) -> str:
    """The official runs' mean ± std (n), then each diverged seed with its epoch."""
    text = summary(c.official)
    for run in c.reference.diverged():
        text += f"; seed {run.seed} diverged at epoch {run.diverged_epoch}"
        if run.last_finite is not None:
            text += f" (last finite {run.last_finite:.2f})"
    return text


def paper_cell(c: Comparison) -> str:
    if math.isnan(c.paper):
        return "–"
    return f"{c.paper:.2f}" + ("" if c.paper_verified else " (unverified)")


def recipe_values(ref: Reference) -> str:
    """The values the official runs used where they differ from the suite's recipe."""
    return ", ".join(f"{k} {v}" for k, v in sorted(ref.hparams.items())) or "suite's"


def summary(values: list[float]) -> str:
    """mean ± sample std (n) over seeds; '± –' for one seed, '–' for none."""
    if not values:
        return "–"
    std = _std(values)
    return f"{_mean(values):.2f} ± {'–' if math.isnan(std) else f'{std:.2f}'} ({len(values)})"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return math.nan
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.2f}"


def plain(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"

"""Published numbers beside ours: a paper suite's `paper:` table, and the report's `paper` / `Δ`.

A benchmark is believed when its numbers can be held against the papers'. A paper suite carries
the table its paper (or official README) published, keyed by dataset label, noise model (ours,
which names the convention: `sym` is DivideMix's all-classes draw, `sym_flip` Co-teaching's
other-class flip), nominal ratio and method. The leaderboard shows `paper` and `Δ = ours - paper`
only where the comparison is like for like: the same dataset, noise convention and ratio, the
metric that matches the paper's epoch rule (`last_acc`, `mean_last10`, `best_acc`), and runs made
with the suite's own recipe. Everywhere else it says why it shows no Δ.
"""

from __future__ import annotations

import math
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Metric = Literal["last_acc", "mean_last10", "mean_last10_networks", "best_acc"]


class PaperTable(BaseModel):
    """A suite's `paper:` section."""

    model_config = ConfigDict(extra="forbid")

    source: str
    metric: Metric | None = None
    """Our metric that equals the paper's epoch rule; None when the source does not say."""
    note: str = ""
    results: dict[str, dict[str, dict[float, dict[str, float]]]] = Field(default_factory=dict)
    """dataset label -> noise model -> nominal ratio -> method -> published test accuracy (%)."""

    def lookup(self, dataset: str, model: str) -> dict[float, dict[str, float]]:
        return self.results.get(dataset, {}).get(model, {})


def paper_table(
    frame: pd.DataFrame, paper: PaperTable, expected: dict[tuple[str, str, float | None, str], str]
) -> str | None:
    """The `paper` / `Δ` lines of one leaderboard group, or None when the paper has no numbers
    for its dataset and noise model."""
    dataset, model = frame["dataset_label"].iloc[0], frame["noise_model"].iloc[0]
    published = paper.lookup(dataset, model)
    if not published:
        return None
    lines, reasons = [], set()
    for ratio in sorted(published):
        for method, value in sorted(published[ratio].items()):
            runs = frame[(frame["method"] == method) & (frame["ratio"].sub(ratio).abs() < 1e-9)]
            own = expected.get((dataset, model, ratio, method))
            runs = runs[runs["hparams"] == own] if own is not None else runs.iloc[0:0]
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
    title = f"### published numbers ({paper.source}"
    title += f"; compared with our {paper.metric})" if paper.metric else ")"
    notes = [f"No Δ: {reason}." for reason in sorted(reasons)]
    if paper.note:
        notes.append(paper.note)
    return "\n".join([title, "", *lines, *([""] + notes if notes else [])])

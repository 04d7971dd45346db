"""Model selection in the report: which configuration and epoch a leaderboard cell shows, picked by
noisy-validation accuracy and never by the test set, and how far that is from the test-selected
oracle.

The runs of a search differ only in their hyperparameters (trial 0 is the entry's defaults). Per
(method entry, noise column) the report takes the configuration with the best mean
noisy-validation accuracy over seeds (each run at its own noisy-validation-selected epoch), and
shows that configuration's test accuracy at that epoch.
"""

from __future__ import annotations

import json

import pandas as pd
from scipy.stats import kendalltau


def name_recipes(recipes: list[str]) -> dict[str, str]:
    """Each recipe (hparams as JSON) named by the values in which the recipes differ
    (`lr=0.1, q=0.3`); one recipe gets ""."""
    parsed = [json.loads(r) for r in recipes]
    keys = sorted({k for h in parsed for k in h})
    differing = [k for k in keys if len({json.dumps(h.get(k)) for h in parsed}) > 1]
    return {
        r: ", ".join(f"{k}={value_text(h.get(k))}" for k in differing)
        for r, h in zip(recipes, parsed)
    }


def value_text(value: object) -> str:
    """A hyperparameter value as a suite would write it (`0.1`, `[40, 80]`, `mlp`)."""
    return f"{value:g}" if isinstance(value, float) else json.dumps(value).strip('"')


def entry_labels(frame: pd.DataFrame) -> pd.Series:
    """Per run of a search, the row label of its method entry: "" when its method has one entry
    in the cell, else the default-recipe values that tell the entries apart (`variant=hard`)."""
    labels = pd.Series("", index=frame.index, dtype=object)
    defaults = frame[frame["trial"] == 0]
    for _, cell in defaults.groupby(["method", "column"]):
        recipes = cell.drop_duplicates("entry")
        if len(recipes) < 2:
            continue
        named = name_recipes(list(recipes["hparams"]))
        for entry, recipe in zip(recipes["entry"], recipes["hparams"]):
            mine = (frame["entry"] == entry) & (frame["column"] == cell["column"].iloc[0])
            labels[mine] = named[recipe]
    return labels


def chosen_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of the configuration each (row, column) picks by mean noisy-validation accuracy
    over seeds, a row being one method entry; ties go to the lower trial (the defaults first)."""
    picks = []
    for _, cell in frame.groupby(["row", "column"]):
        score = cell.groupby("hparams").agg(val=("best_val_acc", "mean"), trial=("trial", "min"))
        best = score.sort_values(["val", "trial"], ascending=[False, True]).index[0]
        picks.append(cell[cell["hparams"] == best])
    return pd.concat(picks) if picks else frame.iloc[0:0]


def chosen_hyperparameters(frame: pd.DataFrame, chosen: pd.DataFrame) -> pd.Series:
    """Per (row, column): the chosen configuration, as the values that differ from that entry's
    defaults in that column (its trial 0), or "defaults"."""
    out = {}
    for (row, column), cell in chosen.groupby(["row", "column"]):
        mine = json.loads(cell["hparams"].iloc[0])
        base = frame[(frame["row"] == row) & (frame["column"] == column) & (frame["trial"] == 0)]
        default = json.loads(base["hparams"].iloc[0]) if not base.empty else {}
        changed = [f"{k}={value_text(v)}" for k, v in sorted(mine.items()) if default.get(k) != v]
        out[(row, column)] = ", ".join(changed) or "defaults"
    return pd.Series(out, dtype=object)


def selection_gaps(frame: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Per (row, column), mean test accuracy over seeds under three choices: the oracle (the
    configuration and epoch with the best *test* accuracy: an upper bound no practitioner has),
    the noisy-validation choice, and the defaults at their noisy-validation-selected epoch; and
    the gap between the oracle and the honest choice."""
    rows = []
    for (row, column), cell in frame.groupby(["row", "column"]):
        oracle = cell.groupby("hparams")["best_acc"].mean().max()
        mine = chosen[(chosen["row"] == row) & (chosen["column"] == column)]
        honest = mine["val_selected_acc"].mean()
        default = cell[cell["trial"] == 0]["val_selected_acc"].mean()
        rows.append({"row": row, "column": column, "oracle": oracle, "noisy_val": honest,
                     "defaults": default, "gap": oracle - honest})  # fmt: skip
    return pd.DataFrame(rows)


def rank_agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per noise column, Kendall's tau between the runs' noisy-validation accuracy and their test
    accuracy at the same (noisy-validation-selected) epoch, over every method, trial and seed:
    does ranking by the labels one has rank as the clean test set would?"""
    rows = []
    for column, cell in frame.groupby("column"):
        pairs = cell.dropna(subset=["best_val_acc", "val_selected_acc"])
        tau = (  # undefined below two runs: NaN, without scipy's warning
            kendalltau(pairs["best_val_acc"], pairs["val_selected_acc"]).statistic
            if len(pairs) > 1
            else float("nan")
        )
        rows.append({"column": column, "tau": tau, "runs": len(pairs)})
    return pd.DataFrame(rows)

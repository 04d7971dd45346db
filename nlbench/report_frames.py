"""The report's data: run records as pandas frames, one row per run (`run_frame`), per epoch
(`epoch_frame`), per table cell (`cell_frame`), and the long CSV form (`long_form`); the groups,
columns and rows of every table are decided here, the Markdown is `report_markdown`'s."""

from __future__ import annotations

import json
import math

import pandas as pd

from nlbench import selection, stats
from nlbench.data.noise import majority_flips, realised_transition
from nlbench.records import Record
from nlbench.run_spec import dataset_label, label_options, noise_label_options

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


NETWORKS_METRIC = (
    "mean_last10_networks",
    "mean test accuracy of the last 10 epochs over every network a method trains (%; JoCoR's "
    "rule, both networks; one network: as above)",
)


SELECTION_COLUMNS = ["trial", "entry", "headline", "best_val_acc", "val_selected_acc"]


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


def run_frame(records: list[Record]) -> pd.DataFrame:
    """One row per finished run, with the table it belongs to (`group`), its column and its row.

    The group is (dataset + options, noise model + options, the engine options that change the
    numbers, the validation split); the column is the nominal ratio, or the noise options (e.g.
    `key=worst`) for real-world noise whose ratio is read, not set.
    """
    rows = []
    for rec in records:
        spec = rec.spec
        final = rec.final.model_dump() if rec.final else {}
        noise_options = noise_label_options(spec.noise)
        ratio = spec.noise.ratio
        numeric = ratio is not None
        dataset = dataset_label(spec.dataset) + options_text(label_options(spec.dataset))
        noise_label = spec.noise.model + (options_text(noise_options) if numeric else "")
        if spec.engine is not None:  # runs that compute other numbers (fp32, threads) split
            noise_label += options_text({"engine": spec.engine.model_dump(exclude_none=True)})
        chosen = spec.selection
        if chosen is not None and chosen.split == "dataset_val":
            noise_label += " · dataset's val"
        elif chosen is not None:  # the split's seed follows the run's, as the noise seed does
            noise_label += f" · noisy val {chosen.fraction:.0%}"
        rows.append(
            {
                "run_id": rec.run_id,
                "data_id": rec.data_id,
                "group": f"{dataset} · {noise_label}",
                "slug": slug(f"{dataset}_{noise_label}"),
                "column": ratio_label(ratio, noise_options),
                "ratio": float(ratio) if numeric else math.nan,
                "method": spec.method.name,
                "dataset_label": dataset_label(spec.dataset),
                "noise_model": spec.noise.model,
                "hparams": json.dumps(spec.method.hparams, sort_keys=True),
                "seed": spec.seed,
                "realised_rate": rec.noise.realised_rate,
                "majority_flips": len(majority_flips(rec.noise.transition_counts)),
                "classes": len(rec.noise.transition_counts),
                "scored_network": rec.scored_network,
                **{key: last_diagnostic(rec, key) for key in DETECTION},
                "trial": spec.method.trial,
                "entry": spec.method.recipe,
                "headline": None if spec.selection is None else spec.selection.headline,
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


def last_diagnostic(rec: Record, key: str) -> float | None:
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


def shown_runs(runs: pd.DataFrame) -> pd.DataFrame:
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
        for metric, _ in metrics_of(frame)
    ]
    columns = ["group", "metric", *stats.CELL_COLUMNS]
    return pd.concat(parts)[columns] if parts else pd.DataFrame(columns=columns)


def ratio_label(ratio: float | None, options: dict | None) -> str:
    """`0.2` for a set ratio; the options (`key=worst`) when the noise, not us, decides the rate."""
    if ratio is not None:
        return f"{ratio:g}"
    return options_text(options).strip(" ()") or "–"


def options_text(options: dict | None) -> str:
    """` (a=1, b=x)` for non-empty options, sorted so equal options always print alike."""
    if not options:
        return ""
    return " (" + ", ".join(f"{k}={options[k]}" for k in sorted(options)) + ")"


def slug(text: str) -> str:
    """A file-name-safe form of a group label, e.g. `digits_sym` or `cifar10_asym_variant=true`."""
    kept = "".join(c if c.isalnum() or c in ".=-_" else "-" for c in text)
    return "-".join(part for part in kept.split("-") if part).replace("-_", "_").replace("_-", "_")


def metrics_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
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

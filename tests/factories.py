"""Schema-valid run records for tests of the store and the report (no training needed)."""

from __future__ import annotations

from typing import Any

from nlbench.records import Record, parse_record

ENV = {
    "nlbench_version": "0.2.0", "nlbench_commit": "c0ffee", "dirty": False, "torch": "2.5.1",
    "cuda": None, "device": "cpu", "device_name": "x86_64", "python": "3.11.7", "threads": 1,
}  # fmt: skip


def record_dict(
    run_id: str = "r",
    *,
    method: str = "ce",
    hparams: dict[str, Any] | None = None,
    dataset: str = "digits",
    dataset_options: dict | None = None,
    model: str = "sym",
    ratio: float | None = 0.2,
    noise_options: dict | None = None,
    seed: int = 0,
    accs: tuple[float, ...] = (40.0, 50.0),
    realised: float = 0.18,
    diagnostics: dict | None = None,
    suite: str = "t",
    failure: dict | None = None,
) -> dict[str, Any]:
    """A record as the runner writes it, as JSON-ready data; `failure` makes it a failed run."""
    epochs = [
        {"epoch": e, "losses": {"loss": 1.0}, "test_acc": acc, "diagnostics": diagnostics or {},
         "seconds": {"selection": 0.0, "train": 1.0, "eval": 0.1}, "images_per_second": 1000.0}
        for e, acc in enumerate(accs)
    ]  # fmt: skip
    best = max(range(len(accs)), key=accs.__getitem__) if accs else 0
    final = None
    if accs and failure is None:
        tail = accs[-10:]
        final = {"last_acc": accs[-1], "best_acc": accs[best], "best_epoch": best,
                 "mean_last10": sum(tail) / len(tail)}  # fmt: skip
    return {
        "schema_version": 2,
        "run_id": run_id,
        "suite": suite,
        "status": "failed" if failure else "ok",
        "failure": failure,
        "spec": {
            "suite": suite,
            "dataset": {"name": dataset, "options": dataset_options or {}},
            "noise": {"model": model, "ratio": ratio, "seed": seed, "options": noise_options or {}},
            "method": {"name": method, "hparams": hparams or {"epochs": len(accs), "lr": 0.02}},
            "seed": seed,
        },
        "env": dict(ENV),
        "noise": {
            "model": model,
            "nominal_ratio": ratio,
            "realised_rate": realised,
            "transition_counts": [[1]],
        },  # fmt: skip
        "epochs": epochs,
        "final": final,
        "scored_network": "the only network",
        "wall_seconds": 3.0,
        "images_per_second": 1000.0,
    }


def make_record(run_id: str = "r", **kwargs: Any) -> Record:
    """`record_dict` parsed into the typed record the store hands out."""
    return parse_record(record_dict(run_id, **kwargs))

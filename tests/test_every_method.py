"""Every registered method trains a few epochs through the harness and resumes bit-identically
from a checkpoint, whatever its stages, passes and state (tiny synthetic data, CPU)."""

from __future__ import annotations

import pytest

from nlbench.expansion import expand
from nlbench.methods.api import available, get
from nlbench.runner import run_sweep
from nlbench.store import Store
from nlbench.suite_loading import suite_from_dict

EPOCHS = {"confident_learning": 6, "dividemix": 3, "forward": 2, "unicon": 3, "promix": 3}
"""Enough epochs to cross a stage or a pass boundary: CL's five folds and its retrained network,
DivideMix's warm-up and a co-divided epoch, forward's two stages."""
OVERRIDES = {
    "dividemix": {"warm_up": 1, "milestones": [2], "batch_size": 16},
    "ssr": {"k": 5, "batch_size": 32},
    "coteaching_plus": {"init_epoch": 1},
    "disc": {"warm_up": 1},
    "unicon": {"warm_up": 1, "batch_size": 16},
    "promix": {"warm_up": 1, "batch_size": 16, "lga_epochs": 1},
}


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way up records it as a failure."""


BUILT_IN = sorted(
    n for n, cls in available().items() if cls.__module__.startswith("nlbench.methods.")
)
"""The shipped methods (other tests register throwaway ones in the same process)."""


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_method_trains_and_resumes_from_a_checkpoint_identically(name, tmp_path, monkeypatch):
    epochs = EPOCHS.get(name, 2)
    raw = {
        "name": "every",
        "datasets": [
            {
                "name": "synthetic",
                "options": {"n_train": 160, "n_test": 40, "num_classes": 4, "size": 8},
            }
        ],  # fmt: skip
        "noise": [{"model": "sym", "ratios": [0.4]}],
        "seeds": [0],
        "common": {"network": "mlp", "batch_size": 32},
        "methods": [{"name": name, "hparams": {"epochs": epochs, **OVERRIDES.get(name, {})}}],
        "engine": {"progress": False, "checkpoint_every": 1},
    }
    suite = suite_from_dict(raw, "every.yaml")
    specs = expand(suite)
    whole, cut = Store(tmp_path / "whole"), Store(tmp_path / "cut")
    run_sweep(suite, specs, whole, device_name="cpu")
    (straight,) = whole.load()[0]
    assert straight.ok, straight.failure

    cls = get(name)
    real = cls.begin_epoch

    def killed_before_the_last_epoch(self, epoch):
        if epoch == epochs - 1:
            raise _Killed
        return real(self, epoch)

    monkeypatch.setattr(cls, "begin_epoch", killed_before_the_last_epoch)
    with pytest.raises(_Killed):
        run_sweep(suite, specs, cut, device_name="cpu")
    monkeypatch.setattr(cls, "begin_epoch", real)
    run_sweep(suite, specs, cut, device_name="cpu")
    (resumed,) = cut.load()[0]
    assert resumed.resumed_from_epoch == epochs - 1
    timing = {"seconds", "images_per_second"}
    assert [e.model_dump(exclude=timing) for e in resumed.epochs] == [
        e.model_dump(exclude=timing) for e in straight.epochs
    ]
    assert resumed.final == straight.final


def test_perf_times_every_registered_method_with_its_epochs_resolved_as_a_suite_would(tmp_path):
    """`perf` swaps in its own epoch count through the suite's resolution, so values derived
    from `epochs` (forward correction's estimation stage, Confident Learning's folds) follow it;
    it once died at forward correction with a raw ValidationError and lost every timing."""
    from nlbench.perf import run_perf

    names = BUILT_IN
    raw = {
        "name": "perfall",
        "datasets": [{"name": "synthetic",
                      "options": {"n_train": 128, "n_test": 32, "num_classes": 4, "size": 8}}],
        "noise": [{"model": "sym", "ratios": [0.4]}],
        "common": {"network": "mlp", "batch_size": 32},
        "methods": [{"name": name, "hparams": OVERRIDES.get(name, {})} for name in names],
        "engine": {"progress": False},
    }  # fmt: skip
    table = run_perf(suite_from_dict(raw, "perfall.yaml"), 2, False, "cpu", tmp_path, "t")
    assert sorted(table["method"]) == names
    assert (table["epoch_s"] > 0).all() and table["test_acc"].notna().all()
    assert (tmp_path / "t.md").is_file() and (tmp_path / "t.csv").is_file()

"""Every paper recipe builds and trains an epoch (of each stage) on real CIFAR-10 images (the
shared subset)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlbench.cli import main
from nlbench.expansion import expand
from nlbench.store import Store
from nlbench.suite_loading import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "fidelity_smoke.yaml"

pytestmark = pytest.mark.slow  # 19 paper recipes on real images: about 11 minutes on 2 CPU cores


def test_every_paper_recipe_trains_an_epoch_on_real_images(shared_dir, tmp_path, monkeypatch):
    data = shared_dir / "data" / "cifar10_subset" / "cifar10_subset.npz"
    if not data.is_file():
        pytest.skip(f"{data} is absent")
    monkeypatch.chdir(ROOT)  # the suite names the data relative to the checkout
    results = tmp_path / "results"
    sets = ["--set", f"results_dir={results}", "--set", f"reports_dir={tmp_path / 'reports'}"]
    assert main(["run", str(SUITE), "--no-progress", *sets]) == 0
    records = Store(results / "fidelity_smoke").load()[0]
    specs = expand(load_suite(SUITE))
    assert len(records) == len(specs) == 19
    assert all(r.ok for r in records), [r.failure for r in records]
    assert all(len(r.epochs) == r.spec.method.hparams["epochs"] for r in records)
    networks = {(r.spec.method.name, r.spec.method.hparams["network"]) for r in records}
    assert networks == {("ssr", "preact_resnet18"), ("ce", "preact_resnet18"), ("ce", "cnn9"),
                        ("gce", "resnet34"), ("coteaching", "cnn9"),
                        ("coteaching_plus", "cnn_small"), ("coteaching_plus", "cnn6"),
                        ("jocor", "cnn6"), ("sce", "sce_cnn"), ("elr", "resnet34"),
                        ("bootstrap", "resnet_cifar"), ("forward", "resnet_cifar"),
                        ("mixup", "preact_resnet18"), ("sop", "preact_resnet18"),
                        ("dividemix", "preact_resnet18"),
                        ("confident_learning", "preact_resnet18"), ("disc", "resnet18"),
                        ("unicon", "preact_resnet18"), ("promix", "resnet18")}  # fmt: skip
    for name in ("disc", "unicon", "promix", "dividemix"):  # a warm-up epoch, then a selecting one
        record = next(r for r in records if r.spec.method.name == name)
        assert [e.phase for e in record.epochs] == ["warmup", "train"], name
    forward = next(r for r in records if r.spec.method.name == "forward")
    assert [e.phase for e in forward.epochs] == ["estimate", "correct"]
    assert len(forward.estimates["transition"]) == 10
    assert all(
        r.env.device == "cpu" and r.spec.engine.model_dump(exclude_none=True) == {"amp": False}
        for r in records
    )

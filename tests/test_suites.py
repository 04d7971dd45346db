"""Every shipped suite validates and expands without any data present (what --dry-run needs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlbench.expansion import expand
from nlbench.suite_loading import load_suite

SUITES = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_suite_validates_and_expands(path):
    specs = expand(load_suite(path))
    assert specs and len({s.run_id for s in specs}) == len(specs)


def test_cifar10n_gives_coteaching_the_published_rate_per_label_set():
    specs = expand(load_suite(SUITES[0].parent / "cifar10n.yaml"))
    rates = {
        s.noise.options["key"]: s.method.hparams["forget_rate"]
        for s in specs
        if s.method.name == "coteaching"
    }
    assert rates == {"aggre": 0.0901, "random1": 0.1723, "worst": 0.4021}
    assert {s.describe().split(" | ")[2] for s in specs} == {
        "cifarn key=aggre",
        "cifarn key=random1",
        "cifarn key=worst",
    }

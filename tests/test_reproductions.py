"""Official-code runs beside ours and the paper: the leaderboard's Δ columns and REPRODUCTIONS.md,
on constructed records whose answers are known."""

from __future__ import annotations

import yaml
from factories import record_dict

from nlbench.cli import main
from nlbench.expansion import expand, expected_recipes
from nlbench.records import parse_record
from nlbench.report import build_report
from nlbench.store import Store
from nlbench.suite_loading import suite_from_dict

OFFICIAL = {
    "repository": "someone/official",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "command": "python main.py --noise_rate 0.2 --seed {seed}",
    "device": "a 2-core CPU",
    "printed": "the test accuracy of its last epoch",
    "metric": "last_acc",
    "dataset": "digits",
    "noise": "sym",
    "ratio": 0.2,
    "method": "ce",
    "runs": [
        {"seed": 1, "value": 69.0, "wall_seconds": 30.0},
        {"seed": 2, "value": 71.0, "wall_seconds": 32.0},
        {"seed": 3, "diverged_epoch": 88, "last_finite": 60.5},
    ],
    "note": "The official loader feeds [0, 1] pixels.",
}
OTHER_LR = {  # the same cell run with another value of ours: held against runs with that value
    **{k: v for k, v in OFFICIAL.items() if k != "note"},
    "command": "python main.py --noise_rate 0.2 --lr 0.1 --seed {seed}",
    "hparams": {"lr": 0.1},
    "runs": [{"seed": 1, "value": 50.0}, {"seed": 2, "value": 52.0}],
}
SUITE = {
    "name": "repro",
    "description": "A constructed reproduction.",
    "datasets": [{"name": "digits"}],
    "noise": [{"model": "sym", "ratios": [0.2, 0.5]}],
    "seeds": [0, 1],
    "methods": [{"name": "ce", "hparams": {"epochs": 3, "network": "mlp"}}],
    "paper": [
        {
            "source": "Paper X",
            "metric": "last_acc",
            "results": {"digits": {"sym": {0.2: {"ce": 71.0}}}},
            "unverified": {"digits": {"sym": {0.5: {"ce": 40.0}}}},
        }
    ],
    "reference": [OFFICIAL, OTHER_LR],
}


def _records(suite) -> list:
    """Ours: 72 and 73 at 0.2 (the suite's recipe), 45 and 47 at 0.5."""
    last = {(0.2, 0): 72.0, (0.2, 1): 73.0, (0.5, 0): 45.0, (0.5, 1): 47.0}
    records = []
    for spec in expand(suite):
        acc = last[(spec.noise.ratio, spec.seed)]
        raw = record_dict(spec.run_id, method="ce", ratio=spec.noise.ratio, seed=spec.seed,
                          accs=(acc - 10, acc), hparams=spec.method.hparams, suite="repro")  # fmt: skip
        raw["spec"] = spec.model_dump(exclude_none=True)
        records.append(parse_record(raw))
    return records


def test_the_leaderboard_shows_delta_to_the_official_runs_and_to_the_paper(tmp_path, monkeypatch):
    from nlbench import plots

    monkeypatch.setattr(plots, "group_plots", lambda *args: [])
    suite = suite_from_dict(SUITE, "repro.yaml")
    paths = build_report(_records(suite), tmp_path, paper=suite.paper,
                         expected=expected_recipes(expand(suite)), reference=suite.reference)  # fmt: skip
    text = paths.markdown.read_text()
    assert "### official code's runs (someone/official@0123456)" in text
    # ours 72.5 ± 0.71, official 70.0 ± 1.41 (the diverged seed left out), paper 71 (verified)
    row = ("| ce | 0.2 | suite's | last_acc | 72.50 ± 0.71 (2) | 70.00 ± 1.41 (2); seed 3 "
           "diverged at epoch 88 (last finite 60.50) | 71.00 | +2.50 | +1.50 | 2.12 | outside |")  # fmt: skip
    assert row in text
    # the official runs with lr 0.1 have no run of ours with that value
    assert "| ce | 0.2 | lr 0.1 | last_acc | – | 51.00 ± 1.41 (2) | 71.00 | – | – | – | – |" in text


def test_reproductions_page_lists_official_runs_paper_only_cells_and_lessons(tmp_path):
    suite_file = tmp_path / "repro.yaml"
    suite_file.write_text(yaml.safe_dump(SUITE))
    store = Store(tmp_path / "results" / "repro")
    for rec in _records(suite_from_dict(SUITE, "repro.yaml")):
        store.write(rec)
    out = tmp_path / "REPRODUCTIONS.md"
    argv = ["reproductions", str(store.root), "--suite", str(suite_file), "--out", str(out)]
    assert main(argv) == 0
    page = out.read_text()
    assert page.startswith("# Reproductions")
    assert "## repro" in page and "A constructed reproduction." in page
    assert ("| ce | sym | 0.2 | suite's | last_acc | 72.50 ± 0.71 (2) | 0,1 | 70.00 ± 1.41 (2); "
            "seed 3 diverged at epoch 88 (last finite 60.50) | 1,2,3 | 71.00 | +2.50 | +1.50 | "
            "2.12 | outside |") in page  # fmt: skip
    # a published number without official code, shown unverified and without Δ
    assert ("| ce | sym | 0.5 | suite's | last_acc | 46.00 ± 1.41 (2) | 0,1 | – (no official code) "
            "| – | 40.00 (unverified) | – | – | – | – |") in page  # fmt: skip
    assert "- The official loader feeds [0, 1] pixels." in page
    assert "Official runs: someone/official @ 0123456789abcdef0123456789abcdef01234567" in page
    assert "wall time per run 30–32 s" in page


def test_a_spread_that_covers_the_difference_is_inside(tmp_path, monkeypatch):
    from nlbench import plots

    monkeypatch.setattr(plots, "group_plots", lambda *args: [])
    raw = yaml.safe_load(yaml.safe_dump(SUITE))
    raw["reference"] = raw["reference"][:1]
    raw["reference"][0]["runs"] = [{"seed": 1, "value": 71.5}, {"seed": 2, "value": 74.5}]
    suite = suite_from_dict(raw, "repro.yaml")
    paths = build_report(_records(suite), tmp_path, paper=suite.paper,
                         expected=expected_recipes(expand(suite)), reference=suite.reference)  # fmt: skip
    assert (
        "| 73.00 ± 2.12 (2) | 71.00 | -0.50 | +1.50 | 2.83 | inside |" in paths.markdown.read_text()
    )

"""Reports: the frozen leaderboard, cell maths, bolding, recipe splits, failures and plots.

The golden test pins the whole leaderboard.md for the records in tests/golden/records/. After an
intended change to the report, regenerate the expected file with
`python -c "import tests.test_report as t; t.regenerate_golden()"`, read the diff line by line,
and commit it only if every change is one you meant.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from factories import record_dict

from nlbench import plots
from nlbench.records import Record, parse_record
from nlbench.report import ReportPaths, build_report

GOLDEN = Path(__file__).parent / "golden"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GOLDEN_PROBLEMS = [("results/golden/deadbeef0000.json", "invalid JSON: line 1 column 1")]


def golden_records() -> list[Record]:
    return [
        parse_record(json.loads(p.read_text())) for p in sorted((GOLDEN / "records").glob("*.json"))
    ]


def regenerate_golden() -> None:
    """Rewrite tests/golden/leaderboard.md from the fixture records (see the module docstring)."""
    out = Path("/tmp/nlbench_golden_report")
    build_report(golden_records(), out, problems=GOLDEN_PROBLEMS)
    (GOLDEN / "leaderboard.md").write_text((out / "leaderboard.md").read_text())


def record(
    method: str,
    ratio: float | None,
    seed: int,
    last_acc: float,
    *,
    hparams: dict | None = None,
    engine: dict | None = None,
    **options,
) -> Record:
    """A record whose three epochs end at `last_acc`; `options` go to `record_dict`."""
    hparams = {"epochs": 3, "lr": 0.02, **(hparams or {})}
    tag = json.dumps([hparams, engine, options], sort_keys=True, default=str)
    raw = record_dict(
        f"{method}-{ratio}-{seed}-{hashlib.sha256(tag.encode()).hexdigest()[:6]}", method=method, ratio=ratio, seed=seed,
        accs=(last_acc - 20, last_acc - 5, last_acc), hparams=hparams, **options,
    )  # fmt: skip
    if engine is not None:
        raw["spec"]["engine"] = engine
    return parse_record(raw)


def failed_record(method: str, ratio: float, seed: int, reason: str, epoch: int) -> Record:
    raw = record_dict(f"failed-{method}-{seed}", method=method, ratio=ratio, seed=seed,
                      accs=(10.0,), failure={"reason": reason, "epoch": epoch})  # fmt: skip
    return parse_record(raw)


def table(markdown: str, group: str, title: str = "last-epoch test accuracy (%)") -> dict:
    """{(row, column): cell} of one table of leaderboard.md, read back the way a reader would."""
    section = markdown.split(f"## {group}\n", 1)[1].split("\n## ", 1)[0]
    lines = section.split(f"### {title}\n", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = rows[0], rows[2:]
    return {(r[0], col): cell for r in body for col, cell in zip(header[1:], r[1:])}


@pytest.fixture
def no_plots(monkeypatch):
    """For tests of the tables alone: rendering figures is most of a report's time."""
    monkeypatch.setattr(plots, "group_plots", lambda *args: [])


def build(records: list[Record], out: Path, **kwargs) -> tuple[ReportPaths, str]:
    paths = build_report(records, out, **kwargs)
    return paths, paths.markdown.read_text(encoding="utf-8")


def test_golden_leaderboard_matches_frozen_file(tmp_path):
    _, text = build(golden_records(), tmp_path, problems=GOLDEN_PROBLEMS)
    assert text == (GOLDEN / "leaderboard.md").read_text(encoding="utf-8")


def test_report_does_not_depend_on_record_order(tmp_path, no_plots):
    records = golden_records()
    _, first = build(records, tmp_path / "a")
    random.Random(0).shuffle(records)
    _, second = build(records, tmp_path / "b")
    assert first == second
    for name in ("leaderboard.csv", "leaderboard_cells.csv"):
        csvs = [(tmp_path / run / name).read_text() for run in ("a", "b")]
        assert csvs[0] == csvs[1], name


def test_std_is_the_sample_std_and_a_dash_for_one_run(tmp_path, no_plots):
    records = [record("ce", 0.2, s, acc) for s, acc in enumerate([70.0, 72.0, 77.0])]
    records.append(record("ce", 0.5, 0, 55.5))
    _, text = build(records, tmp_path)
    cells = table(text, "digits · sym")
    # mean 73, sample std sqrt(26/2) = 3.61 (the population std would print 2.94), t interval
    assert cells[("ce", "0.2")] == "**73.00 ± 3.61 [64.0, 82.0] (3)**"
    assert cells[("ce", "0.5")] == "55.50 ± – (1)", "one seed: no interval, nothing claimed"


def test_bold_goes_to_the_best_and_every_method_tied_with_it_paired_by_seed(tmp_path, no_plots):
    """b trails a by 0.1-0.3 on every seed (inside the ROPE): tied; c trails by 10: not. At 0.5 the
    best mean has one seed: nothing is claimed, so nothing is bold."""
    accs = {"a": [80.0, 85.0, 90.0], "b": [79.8, 84.7, 89.9], "c": [70.0, 75.0, 80.0]}
    records = [record(m, 0.2, s, acc) for m, vals in accs.items() for s, acc in enumerate(vals)]
    records += [record("a", 0.5, 0, 60.0), record("b", 0.5, 0, 50.0), record("b", 0.5, 1, 52.0)]
    _, text = build(records, tmp_path)
    cells = table(text, "digits · sym")
    bold = {key for key, cell in cells.items() if cell.startswith("**")}
    assert bold == {("a", "0.2"), ("b", "0.2")}
    assert cells[("b", "0.2")] == "**84.80 ± 5.05 [72.3, 97.3] (3)**"
    assert "ROPE of 0.5 (paired by seed; one-sided paired t-test" in text


def test_best_epoch_and_last10_tables_are_labelled(tmp_path, no_plots):
    _, text = build([record("ce", 0.2, 0, 70.0)], tmp_path)
    best = table(text, "digits · sym", "best epoch (selected on the test set), test accuracy (%)")
    last10 = table(text, "digits · sym", "mean test accuracy of the last 10 epochs (%)")
    assert best[("ce", "0.2")] == "70.00 ± – (1)"
    assert last10[("ce", "0.2")] == "61.67 ± – (1)"


def test_two_recipes_of_one_method_are_not_merged(tmp_path, no_plots):
    records = [
        record("ce", 0.2, 0, 80.0),
        record("ce", 0.2, 1, 82.0),
        record("ce", 0.2, 0, 60.0, hparams={"lr": 0.1, "epochs": 5}),
        record("ssr", 0.2, 0, 85.0, hparams={"k": 20}),
    ]
    _, text = build(records, tmp_path)
    cells = table(text, "digits · sym")
    assert cells[("ce epochs=3, lr=0.02", "0.2")] == "81.00 ± 1.41 [68.3, 93.7] (2)"
    assert cells[("ce epochs=5, lr=0.1", "0.2")] == "60.00 ± – (1)"
    assert ("ssr", "0.2") in cells, "one recipe: the plain name"
    assert "ce ran under 2 recipes (epochs=3, lr=0.02; epochs=5, lr=0.1)" in text


def test_specs_that_differ_beyond_the_seed_get_separate_tables(tmp_path, no_plots):
    records = [
        record("ce", 0.2, 0, 80.0),
        record("ce", 0.2, 0, 50.0, dataset_options={"subset": 100}),
        record("ce", 0.2, 0, 60.0, model="asym", noise_options={"variant": "superclass"}),
        record("ce", 0.2, 0, 40.0, engine={"amp": False}),  # fp32 runs never share a bf16 cell
    ]
    _, text = build(records, tmp_path)
    assert table(text, "digits · sym")[("ce", "0.2")] == "80.00 ± – (1)"
    assert table(text, "digits (subset=100) · sym")[("ce", "0.2")] == "50.00 ± – (1)"
    assert table(text, "digits · asym (variant=superclass)")[("ce", "0.2")].startswith("60.00")
    assert table(text, "digits · sym (engine={'amp': False})")[("ce", "0.2")] == "40.00 ± – (1)"


def test_realised_noise_is_shown_per_ratio(tmp_path, no_plots):
    records = [
        record("ce", 0.2, 0, 80.0, realised=0.17),
        record("ce", 0.2, 1, 80.0, realised=0.19),
        record("ce", 0.5, 0, 60.0, realised=0.45),
    ]
    _, text = build(records, tmp_path)
    assert "realised noise (nominal→realised): 0.2→0.180, 0.5→0.450" in text


def test_real_world_noise_uses_its_options_as_columns(tmp_path):
    records = [
        record(
            "ce",
            None,
            0,
            70.0,
            dataset="cifar10",
            model="cifarn",
            noise_options={"key": key},
            realised=rate,
        )
        for key, rate in (("worst", 0.40), ("aggre", 0.09))
    ]
    paths, text = build(records, tmp_path)
    cells = table(text, "cifar10 · cifarn")
    assert list(dict.fromkeys(col for _, col in cells)) == ["key=aggre", "key=worst"]
    assert "key=aggre→0.090, key=worst→0.400" in text
    names = {p.name for p in paths.plots}
    assert names == {"curves_cifar10_cifarn.png"}, "no accuracy-vs-ratio line without ratios"


def test_failed_runs_and_unreadable_records_are_listed_not_scored(tmp_path, no_plots):
    crashed = failed_record("coteaching", 0.5, 1, "loss is nan", 3)
    stored_only = failed_record("elr", 0.5, 0, "diverged", 7)
    records = [record("coteaching", 0.5, 0, 70.0), crashed, stored_only]
    extra = failed_record("ssr", 0.2, 0, "CUDA out of memory", 0)
    problems = [(Path("results/t/x.json"), "truncated")]
    records.append(extra)
    _, text = build(records, tmp_path, problems=problems)
    failed = text.split("## Failed runs\n", 1)[1].split("\n## ", 1)[0]
    assert (
        failed.count(
            "| failed-coteaching-1 | coteaching | digits  | sym   |   0.5 |    1 | "
            "loss is nan        |     3 |"
        )
        == 1
    )
    assert "| failed-ssr-0" in failed and "CUDA out of memory" in failed
    assert "| failed-elr-0" in failed and "diverged" in failed
    assert table(text, "digits · sym")[("coteaching", "0.5")] == "70.00 ± – (1)"
    assert "| results/t/x.json | truncated |" in text.split("## Unreadable records\n", 1)[1]
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    assert sorted(csv["status"]) == ["failed", "failed", "failed", "ok"]


def test_csv_has_one_flat_row_per_run(tmp_path, no_plots):
    diag = {"selection_precision": 0.9, "fraction_selected": 0.6}
    records = [record("ssr", 0.2, s, 80.0 + s, realised=0.18, diagnostics=diag) for s in (0, 1)]
    paths, _ = build(records, tmp_path)
    csv = pd.read_csv(paths.csv)
    assert len(csv) == 2
    for column in (
        "run_id",
        "spec.dataset.name",
        "spec.noise.ratio",
        "spec.method.hparams.lr",
        "spec.seed",
        "final.last_acc",
        "final.best_epoch",
        "final.mean_last10",
        "noise.realised_rate",
        "wall_seconds",
        "images_per_second",
        "diagnostics.selection_precision",
        "env.device",
    ):
        assert column in csv.columns, column
    assert list(csv["final.last_acc"]) == [80.0, 81.0]
    assert list(csv["diagnostics.fraction_selected"]) == [0.6, 0.6]


def test_plots_are_valid_pngs_and_diagnostics_only_when_reported(tmp_path):
    diag = {"selection_precision": 0.9, "selection_recall": 0.7}
    records = [
        record(m, r, s, 80.0 - 30 * r + s, diagnostics=diag if m == "ssr" else None)
        for m in ("ce", "ssr")
        for r in (0.2, 0.5)
        for s in (0, 1)
    ] + [record("ce", 0.2, 0, 70.0, dataset="mnist")]
    paths, text = build(records, tmp_path)
    assert {p.name for p in paths.plots} == {
        "acc_vs_noise_digits_sym.png",
        "curves_digits_sym.png",
        "diagnostics_digits_sym.png",
        "acc_vs_noise_mnist_sym.png",
        "curves_mnist_sym.png",
    }
    for path in paths.plots:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, path
        assert f"(plots/{path.name})" in text


def test_an_estimated_transition_matrix_gets_a_heat_map_beside_the_realised_one(
    tmp_path, monkeypatch
):
    """Forward correction's T_hat (in the record) is drawn, averaged over seeds, under the realised
    T of its noise with its mean absolute error; groups without an estimate get no such figure."""
    records = []
    for seed, estimate in enumerate(([[0.7, 0.3], [0.2, 0.8]], [[0.9, 0.1], [0.0, 1.0]])):
        raw = record_dict(f"fw-{seed}", method="forward", seed=seed)
        raw["noise"]["transition_counts"] = [[8, 2], [1, 9]]
        raw["estimates"] = {"transition": estimate}
        records.append(parse_record(raw))
    records.append(record("ce", 0.2, 0, 70.0, dataset="mnist"))
    drawn: dict[str, list] = {}
    real = plots._heat_map

    def spy(ax, matrix, title):
        drawn[title] = matrix.tolist()
        return real(ax, matrix, title)

    monkeypatch.setattr(plots, "_heat_map", spy)
    paths, text = build(records, tmp_path)
    names = {p.name for p in paths.plots}
    assert "transition_digits_sym.png" in names and "transition_mnist_sym.png" not in names
    assert "(plots/transition_digits_sym.png)" in text
    assert drawn["realised T, noise 0.2"] == [[0.8, 0.2], [0.1, 0.9]]
    estimated = [m for t, m in drawn.items() if t.startswith("forward: estimated T")]
    assert estimated == [[[0.8, 0.2], [0.1, 0.9]]]  # the mean of the two seeds' estimates
    assert any("mean |error| 0.000" in t for t in drawn)


def test_plots_of_an_earlier_report_are_removed(tmp_path):
    build([record("ce", 0.2, 0, 80.0, dataset="mnist")], tmp_path)
    paths, _ = build([record("ce", 0.2, 0, 80.0)], tmp_path)
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == sorted(
        p.name for p in paths.plots
    )


def test_no_records_still_gives_a_report(tmp_path):
    paths, text = build([], tmp_path)
    assert "## Failed runs\n\nnone" in text and paths.plots == []
    assert paths.csv.exists()


@pytest.mark.slow
def test_fifty_records_take_seconds_not_minutes(tmp_path):
    diag = {"selection_precision": 0.9}
    records = [
        record(m, r, s, 80.0 - 30 * r + s, diagnostics=diag)
        for m in ("ce", "coteaching", "ssr", "dividemix", "elr")
        for r in (0.2, 0.5)
        for s in range(5)
    ]
    start = time.perf_counter()
    build(records, tmp_path)
    assert time.perf_counter() - start < 10.0


def _captured_figures(monkeypatch) -> list:
    """Every figure the report saves, kept for inspection after it is written."""
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: figures.append(fig) or save(fig, *a, **k)
    )
    return figures


def test_titles_fit_their_figures_and_do_not_overlap(tmp_path, monkeypatch):
    """One-column figures used to clip their title; the diagnostics title overlapped panel titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figures = _captured_figures(monkeypatch)
    diag = {"selection_precision": 0.9, "selection_recall": 0.7, "fraction_selected": 0.5}
    records = [record("ssr", 0.8, s, 60.0 + s, diagnostics=diag) for s in (0, 1)]
    build(records, tmp_path)
    assert len(figures) == 3
    for fig in figures:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        box = fig.bbox
        title = fig._suptitle.get_window_extent(renderer)
        assert box.x0 <= title.x0 and title.x1 <= box.x1 and title.y1 <= box.y1, fig._suptitle
        for ax in fig.axes:
            panel = ax.title.get_window_extent(renderer)
            if ax.title.get_text():
                assert not panel.overlaps(title), (ax.title.get_text(), fig._suptitle.get_text())


def test_a_single_ratio_shows_its_spread_as_error_bars(tmp_path, monkeypatch):
    from matplotlib.container import ErrorbarContainer

    figures = _captured_figures(monkeypatch)
    build([record("ce", 0.5, s, 60.0 + 4 * s) for s in (0, 1, 2)], tmp_path)
    (acc,) = [f for f in figures if "accuracy vs noise" in f._suptitle.get_text()]
    (bars,) = [c for c in acc.axes[0].containers if isinstance(c, ErrorbarContainer)]
    (segments,) = bars.lines[2]
    low, high = segments.get_segments()[0][:, 1]
    assert high - low == pytest.approx(2 * 4.0, rel=1e-6)  # mean ± sample std (4.0)


def test_published_numbers_show_a_delta_only_where_the_comparison_holds(tmp_path, no_plots):
    from nlbench.published import PaperTable

    paper = PaperTable(
        source="Paper X, Table 1", metric="last_acc",
        results={"digits": {"sym": {0.2: {"ce": 70.0, "ssr": 90.0}, 0.5: {"ce": 50.0}}}},
    )  # fmt: skip
    own = json.dumps({"epochs": 3, "lr": 0.02}, sort_keys=True)
    expected = {("digits", "sym", 0.2, "ce"): own, ("digits", "sym", 0.5, "ce"): own}
    records = [record("ce", 0.2, s, 72.0 + s) for s in (0, 1)]
    records.append(record("ce", 0.5, 0, 45.0, hparams={"epochs": 5}))  # an overridden recipe
    _, text = build(records, tmp_path, paper=[paper], expected=expected)
    assert "### published numbers (Paper X, Table 1; compared with our last_acc)" in text
    assert "- ce at 0.2: paper 70.00, ours 72.50 (n=2), Δ +2.50" in text
    assert "- ce at 0.5: paper 50.00, Δ – (no run with the suite's own recipe)" in text
    assert "- ssr at 0.2: paper 90.00, Δ – (no run with the suite's own recipe)" in text
    unknown = paper.model_copy(update={"metric": None})
    _, text = build(records, tmp_path / "unknown", paper=[unknown], expected=expected)
    assert "- ce at 0.2: paper 70.00\n" in text and "Δ +" not in text
    assert "No Δ: the source does not say which epoch it reports." in text


def test_every_shipped_paper_suite_carries_a_table_that_matches_its_grid():
    from nlbench.expansion import expand, expected_recipes
    from nlbench.suite_loading import load_suite

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    papers = [p for p in sorted(root.glob("*_paper.yaml"))]
    assert len(papers) >= 3
    for path in papers:
        suite = load_suite(path)
        assert suite.paper, path.name
        recipes = expected_recipes(expand(suite))
        for table in suite.paper:
            for results in (table.results, table.unverified):
                for dataset, models in results.items():
                    for model, ratios in models.items():
                        for ratio, methods in ratios.items():
                            for method in methods:
                                key = (dataset, model, ratio, method)
                                assert key in recipes, (path.name, key)


def test_a_run_with_overridden_recipe_gets_no_delta_through_the_cli(write_suite, tmp_path):
    """`--set` shortens a paper suite's runs: the leaderboard must not hold them against the paper."""
    from nlbench.cli import main

    path = write_suite("""
name: papery
datasets: [{name: synthetic, options: {n_train: 64, n_test: 32, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2]}]
methods: [{name: ce, hparams: {network: mlp, epochs: 2}}]
engine: {progress: false}
device: cpu
paper:
  source: "A paper, Table 1"
  metric: last_acc
  results: {synthetic: {sym: {0.2: {ce: 50.0}}}}
""")
    board = tmp_path / "reports" / "papery" / "leaderboard.md"
    assert main(["run", str(path), "--set", "methods.ce.hparams.epochs=1"]) == 0
    assert "- ce at 0.2: paper 50.00, Δ – (no run with the suite's own recipe)" in board.read_text()
    assert main(["run", str(path)]) == 0
    assert re.search(
        r"- ce at 0\.2: paper 50\.00, ours [\d.]+ \(n=1\), Δ [+-][\d.]+", board.read_text()
    )


def test_report_command_shows_paper_and_delta_for_a_shipped_paper_suite(tmp_path, capsys):
    """`run_bench.py report` on records of coteaching_paper: the suite's table is found by the
    records' suite name and held against runs of its own recipe (mean of the last 10 epochs)."""
    from nlbench.cli import main
    from nlbench.expansion import expand
    from nlbench.records import parse_record
    from nlbench.store import Store
    from nlbench.suite_loading import load_suite

    suite = load_suite(Path(__file__).resolve().parents[1] / "benchmarks" / "coteaching_paper.yaml")
    (spec,) = [s for s in expand(suite) if s.dataset.name == "cifar10" and s.seed == 0
               and s.noise.model == "pairflip" and s.method.name == "coteaching"]  # fmt: skip
    raw = record_dict(spec.run_id, method="coteaching", dataset="cifar10", model="pairflip",
                      ratio=0.45, accs=(60.0, 70.0, 74.0), suite="coteaching_paper",
                      hparams=spec.method.hparams)  # fmt: skip
    raw["spec"] = spec.model_dump(exclude_none=True)
    store = Store(tmp_path / "coteaching_paper")
    store.write(parse_record(raw))
    assert main(["report", str(store.root), "--out", str(tmp_path / "out")]) == 0
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "published numbers (Co-teaching (Han et al., NeurIPS 2018), Tables 4, 5 and 6" in board
    assert "- coteaching at 0.45: paper 72.62, ours 68.00 (n=1), Δ -4.62" in board
    assert "- ce at 0.45: paper 49.50, Δ – (no run with the suite's own recipe)" in board

"""The leaderboard's statistics on constructed records whose answer is known: intervals, ties
paired by seed with a ROPE, nothing claimed on one seed or on test-selected numbers, ranks and the
critical-difference diagram across a suite, wins/ties/losses against the baseline, and the seeds
a gap would need."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report import build, record, table

from nlbench import stats

GROUP = "digits · sym"
LAST = "last-epoch test accuracy (%)"


@pytest.fixture(autouse=True)
def no_group_plots(monkeypatch):
    """Only the suite's critical-difference diagram is drawn; group figures are other tests'."""
    from nlbench import plots

    monkeypatch.setattr(plots, "group_plots", lambda *args: [])


def runs_of(values: dict[str, list[float]], ratio: float = 0.2) -> list:
    """One record per (method, seed) of one cell, seeds 0..n-1."""
    return [
        record(method, ratio, seed, acc)
        for method, accs in values.items()
        for seed, acc in enumerate(accs)
    ]


def bold(cells: dict, column: str = "0.2") -> set[str]:
    return {row for (row, col), cell in cells.items() if col == column and cell.startswith("**")}


@pytest.mark.parametrize("seeds", [3, 12])
def test_identical_seeds_plus_noise_below_the_rope_are_tied(tmp_path, seeds):
    """b is a's per-seed accuracy plus noise within ±0.45 (< the ROPE of 0.5): tied, however
    consistent the sign; c, 8 points below on every seed, is not. 12 seeds take the Bayesian
    signed-rank test, 3 the t-test."""
    rng = np.random.default_rng(seeds)
    base = 70 + 3 * rng.standard_normal(seeds)
    values = {"a": base, "b": base + rng.uniform(0.05, 0.45, seeds), "c": base - 8}
    _, text = build(runs_of({k: list(v) for k, v in values.items()}), tmp_path)
    assert bold(table(text, GROUP)) == {"a", "b"}
    test = "Bayesian signed-rank" if seeds >= stats.MANY_SEEDS else "paired t-test"
    assert test in text.split(f"### {LAST}", 1)[1].split("###", 1)[0]


@pytest.mark.parametrize("seeds", [3, 12])
def test_a_method_better_by_five_points_on_every_seed_is_alone_in_bold(tmp_path, seeds):
    rng = np.random.default_rng(seeds)
    base = 70 + 3 * rng.standard_normal(seeds)
    values = {
        "a": base + 5 + rng.uniform(-0.1, 0.1, seeds),
        "b": base,
        "c": base + rng.uniform(-0.3, 0.3, seeds),
    }
    _, text = build(runs_of({k: list(v) for k, v in values.items()}), tmp_path)
    assert bold(table(text, GROUP)) == {"a"}


def test_a_large_mean_gap_without_pairing_evidence_is_a_tie():
    """Co-teaching+ at asym 0.4 in the quick suite: means 84.94 vs 82.59 with a spread of 13 over
    3 seeds is no claim; the best stays bold, and so does the rest."""
    frame = pd.DataFrame(
        [
            {"row": r, "column": "0.4", "seed": s, "acc": v}
            for r, vals in {
                "gce": [91.0, 79.0, 84.8],
                "ce": [80.0, 85.5, 82.3],
                "ctp": [95.0, 69.0, 86.9],
            }.items()
            for s, v in enumerate(vals)
        ]
    )
    cells = stats.cells(frame, "acc").set_index("row")
    assert cells["tied"].all()
    assert cells.loc["gce", "leader"] and cells.loc["ce", "test"] == "t"
    assert (cells.drop("gce")["p_holm"] >= stats.ALPHA).all()


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 9):
        p = list(rng.uniform(0, 0.2, size)) + [0.01] * (size > 2)  # ties too
        assert stats.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_one_seed_claims_nothing_and_the_oracle_table_is_never_bold(tmp_path):
    records = runs_of({"a": [90.0], "b": [60.0]}) + runs_of({"a": [90, 91], "b": [60, 61]}, 0.5)
    _, text = build(records, tmp_path)
    cells = table(text, GROUP)
    assert bold(cells, "0.2") == set(), "one seed: no test, no bold"
    assert cells[("a", "0.2")] == "90.00 ± – (1)"
    assert bold(cells, "0.5") == {"a"}
    oracle = table(text, GROUP, "best epoch (selected on the test set), test accuracy (%)")
    assert not any(cell.startswith("**") for cell in oracle.values())
    assert "Selected on the test set (an oracle): nothing here is bold or tested." in text


def test_intervals_are_t_below_ten_seeds_and_a_bootstrap_from_ten(tmp_path):
    low, high, kind = stats.interval(np.array([70.0, 72.0, 77.0]))
    # 73 ± t(0.975, 2) · s/√3 = 73 ± 4.3027 · 3.6056/1.7321
    assert kind == "t" and (low, high) == pytest.approx((64.043, 81.957), abs=1e-3)
    many = np.random.default_rng(0).normal(80, 2, 12)
    low, high, kind = stats.interval(many)
    assert kind == "bootstrap" and low < many.mean() < high
    assert (low, high) == stats.interval(many)[:2], "seeded: the same every build"
    assert stats.interval(np.array([70.0]))[2] == ""
    paths, text = build(runs_of({"a": [70.0, 72.0, 77.0], "b": list(many)}), tmp_path)
    assert table(text, GROUP)[("a", "0.2")] == "73.00 ± 3.61 [64.0, 82.0] (3)"
    cells = pd.read_csv(paths.cells)
    mine = cells[(cells["metric"] == "last_acc") & (cells["row"] == "a")].iloc[0]
    assert (mine["low"], mine["high"], mine["interval"]) == (
        pytest.approx(64.043, abs=1e-3),
        pytest.approx(81.957, abs=1e-3),
        "t",
    )
    assert set(cells["interval"]) == {"t", "bootstrap"}


def constructed_suite() -> list:
    """Ten cells; a and b trade places (a ahead in 6), far above c and d (c ahead in 6)."""
    records = []
    for i in range(10):
        ratio = round(0.05 + 0.09 * i, 2)
        top, low = (0.3, -0.3) if i < 6 else (-0.3, 0.3)
        for seed in range(2):
            base = 90 - 10 * ratio + seed
            accs = {"a": base + top, "b": base - top, "c": base - 20 - low, "d": base - 20 + low}
            records += [record(method, ratio, seed, acc) for method, acc in accs.items()]
    return records


def test_the_critical_difference_diagram_groups_the_methods_as_constructed(tmp_path, monkeypatch):
    import scikit_posthocs

    drawn = []
    real = scikit_posthocs.critical_difference_diagram

    def spy(ranks, sig_matrix, **kwargs):
        artists = real(ranks, sig_matrix, **kwargs)
        drawn.append((pd.Series(ranks), artists))
        return artists

    monkeypatch.setattr(scikit_posthocs, "critical_difference_diagram", spy)
    paths, text = build(constructed_suite(), tmp_path)
    ranks, artists = drawn[0]  # the headline rule's diagram
    assert ranks.to_dict() == pytest.approx({"a": 1.4, "b": 1.6, "c": 3.4, "d": 3.6})
    by_rank = {round(r, 6): name for name, r in ranks.items()}
    groups = {
        frozenset(by_rank[round(x, 6)] for x in bar[0].get_xdata()) for bar in artists["crossbars"]
    }
    assert groups == {frozenset("ab"), frozenset("cd")}
    cd = paths.markdown.parent / "plots" / "cd_last_acc.png"
    assert cd in paths.plots and cd.read_bytes().startswith(b"\x89PNG")
    assert "(plots/cd_last_acc.png)" in text
    assert "Friedman's test over 10 cells and 4 methods: p = " in text
    section = text.split("## Across the suite", 1)[1]
    ranks_table = section.split("\n\n")[2].splitlines()[2:]
    order = [line.split("|")[1].strip() for line in ranks_table]
    assert order == ["a", "b", "c", "d"]


def test_an_equal_suite_is_one_group_and_claims_no_pair():
    """a, b and c take each rank in turn over six cells: equal average ranks, Friedman p = 1."""
    from nlbench.report_frames import run_frame

    records = [
        record(m, round(0.1 * (i + 1), 1), s, 80.0 + s + (j + i) % 3)
        for i in range(6)
        for j, m in enumerate("abc")
        for s in range(2)
    ]
    runs = run_frame(records)
    ranking = stats.ranking(runs, "last_acc")
    assert ranking.friedman_p >= stats.ALPHA and ranking.nemenyi is None
    assert (ranking.significance() == 1.0).all().all(), "one bar over every method"


def test_wins_ties_and_losses_against_the_baseline(tmp_path):
    gaps = {0.2: 5.0, 0.4: 6.0, 0.6: 0.1, 0.8: -5.0}  # x − ce per cell
    records = []
    for ratio, delta in gaps.items():
        for seed, jitter in enumerate((0.0, 0.2, -0.1)):
            records.append(record("ce", ratio, seed, 70.0 + seed))
            records.append(record("x", ratio, seed, 70.0 + seed + delta + jitter))
            records.append(record("y", ratio, seed, 60.0 + seed))
    _, text = build(records, tmp_path)
    section = text.split("## Across the suite", 1)[1].split("\n### ")[1]
    assert "| ce     |" in section and "(baseline)" in section
    assert " 2 / 1 / 1 |" in section.split("| x ")[1].splitlines()[0]
    assert " 0 / 0 / 4 |" in section.split("| y ")[1].splitlines()[0]
    _, text = build(records, tmp_path / "x", baseline="x")
    section = text.split("## Across the suite", 1)[1].split("\n### ")[1]
    assert " 1 / 1 / 2 |" in section.split("| ce ")[1].splitlines()[0]


def test_seeds_needed_for_the_closest_pair():
    """Gaps 0.5, 1.5, 2.5: mean 1.5, sd 1, so an effect of (1.5 − 0.5)/1 = 1 beyond the ROPE;
    a one-sided one-sample t-test at α = 0.05 reaches 80 % power at 8 (7.7 rounded up)."""
    base = [70.0, 74.0, 71.0]
    frame = pd.DataFrame(
        [
            {"group": "g", "column": col, "row": row, "seed": s, "acc": base[s] + shift[s]}
            for col, rows in {
                "0.2": {"a": [0.5, 1.5, 2.5], "b": [0, 0, 0]},
                "0.5": {"a": [0.2, 0.1, 0.3], "b": [0, 0, 0]},
            }.items()
            for row, shift in rows.items()
            for s in range(3)
        ]
    )
    pairs = stats.closest_pairs(frame, "acc").set_index("column")
    assert pairs.loc["0.2", "seeds"] == 8 and pairs.loc["0.2", "best"] == "a"
    assert pd.isna(pairs.loc["0.5", "seeds"]), "inside the ROPE: no number of seeds"
    line = stats.seeds_needed_line(pairs.reset_index(), ran=3)
    assert line.startswith("8 (median; range 8–8) for the closest pair of 1 cell(s)")
    assert "1 inside the ROPE" in line and "3 seed(s) ran" in line


def test_the_report_command_prints_a_seeds_needed_line(tmp_path, capsys):
    from nlbench.cli import main
    from nlbench.store import Store

    store = Store(tmp_path / "t")
    for rec in runs_of({"a": [80.0, 81.0, 83.0], "b": [79.0, 79.5, 80.0], "ce": [70, 71, 72]}):
        store.write(rec)
    assert main(["report", str(store.root), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "seeds-needed: " in out and "cells:       " in out
    assert (tmp_path / "out" / "leaderboard_cells.csv").exists()


def test_a_suite_names_its_baseline_and_a_typo_is_refused(write_suite):
    from nlbench.errors import ConfigError
    from nlbench.suite_loading import load_suite

    body = """
name: b
datasets: [digits]
noise: [{model: sym, ratios: [0.2]}]
methods: [ce, gce]
"""
    assert load_suite(write_suite(body)).baseline is None  # the report then uses ce
    assert load_suite(write_suite(body + "baseline: gce\n")).baseline == "gce"
    with pytest.raises(ConfigError, match="baseline 'gcee' is none of the suite's methods"):
        load_suite(write_suite(body + "baseline: gcee\n"))

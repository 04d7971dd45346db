"""The statistics behind the leaderboard's marks: intervals, ties, ranks across a suite, and how
many seeds a claim needs.

A leaderboard cell holds a few seeds, so the best mean of a column is often noise. Runs of one cell
share their seed with the other methods' runs (the same noise draw and split), so every
comparison here is paired by seed. A gap counts only when it is larger than a region of
practical equivalence (`ROPE`, in the metric's points): two methods whose per-seed accuracies
differ by less are tied however consistent the difference. Below `MANY_SEEDS` paired seeds the
evidence is a one-sided paired t-test of "the gap is at most the ROPE", with Holm's correction
over the comparisons of a column; from `MANY_SEEDS` on it is the Bayesian signed-rank test
(baycomp), which needs no normality and states practical equivalence directly, and which with a
handful of seeds would be driven by its prior. With fewer than two paired seeds nothing is claimed.

Across a suite, each (dataset, noise, ratio) cell is one block: methods are ranked by their mean
in each cell, Friedman's test asks whether the average ranks differ at all, and only then
Nemenyi's post-hoc test (scikit-posthocs) says which pairs do, as a critical-difference diagram
draws them (Demšar, JMLR 2006).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
ROPE = 0.5
"""Accuracy points; the detection tables (fractions) use ROPE / 100."""
CONFIDENCE = 0.95
POWER = 0.8
MANY_SEEDS = 10
"""From this many values on: bootstrap intervals and the Bayesian signed-rank test."""
BAYES_SAMPLES = 20_000
MAX_SEEDS = 1000
"""Seeds-needed estimates above this are shown as "> 1000": the gap is as good as none."""
CELL_COLUMNS = (
    "row column n mean std low high interval leader tied test paired p_holm p_posterior".split()
)


@dataclass(frozen=True)
class Gap:
    """Paired gaps a − b over the seeds both ran, and the evidence that a is ahead of b (or behind
    it) by more than the ROPE: p-values of the t-tests ("t"), or the posterior probabilities of
    the signed-rank test ("signed-rank"); NaN with `test` "" when fewer than two seeds pair."""

    n: int
    mean: float
    sd: float
    test: str
    ahead: float
    behind: float

    def claims(self, evidence: float) -> bool:
        """Whether `ahead`/`behind` (or a Holm-adjusted p) is strong enough to claim a gap."""
        if self.test == "signed-rank":
            return evidence >= 1 - ALPHA
        return evidence < ALPHA


def interval(values: np.ndarray) -> tuple[float, float, str]:
    """The 95 % interval of the mean: Student's t below `MANY_SEEDS` values (it assumes roughly
    normal seeds, all a few values can support), a seeded BCa bootstrap from there on (no shape
    assumed); none for a single value."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return math.nan, math.nan, ""
    if np.ptp(values) == 0:
        return mean, mean, "t" if len(values) < MANY_SEEDS else "bootstrap"
    if len(values) < MANY_SEEDS:
        sem = float(values.std(ddof=1)) / math.sqrt(len(values))
        low, high = sps.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sem)
        return float(low), float(high), "t"
    boot = sps.bootstrap(
        (values,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=9999,
        method="BCa",
        random_state=np.random.default_rng(0),
    )
    return float(boot.confidence_interval.low), float(boot.confidence_interval.high), "bootstrap"


def gap(a: pd.Series, b: pd.Series, rope: float = ROPE) -> Gap:
    """The paired comparison of two rows' per-seed values (Series indexed by seed)."""
    gaps = (a - b).dropna().to_numpy(dtype=float)
    n = len(gaps)
    mean = float(gaps.mean()) if n else math.nan
    sd = float(gaps.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return Gap(n, mean, sd, "", math.nan, math.nan)
    if n >= MANY_SEEDS:
        behind, _, ahead = _signed_rank(tuple(gaps), rope)
        return Gap(n, mean, sd, "signed-rank", ahead, behind)
    if np.ptp(gaps) <= 1e-9 * max(1.0, abs(mean)):  # no spread (rounding aside): t is undefined
        return Gap(n, mean, sd, "t", float(mean <= rope), float(mean >= -rope))
    ahead = sps.ttest_1samp(gaps, rope, alternative="greater").pvalue
    behind = sps.ttest_1samp(gaps, -rope, alternative="less").pvalue
    return Gap(n, mean, sd, "t", float(ahead), float(behind))


@lru_cache(maxsize=4096)
def _signed_rank(gaps: tuple[float, ...], rope: float) -> tuple[float, float, float]:
    """P(gap < −rope), P(inside), P(gap > rope) from baycomp's Bayesian signed-rank test
    (seeded: the report must not change between builds). Cached: every table asks twice."""
    import baycomp

    zeros = np.zeros(len(gaps))
    probs = baycomp.SignedRankTest.probs(
        zeros, np.asarray(gaps), rope, nsamples=BAYES_SAMPLES, random_state=0
    )
    return tuple(float(p) for p in probs)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of one family of p-values: the i-th smallest times (m − i),
    made monotone, capped at 1. Written out rather than taken from statsmodels, whose Holm branch
    runs a full garbage collection on every call (a quarter of a second each in a report's heap;
    a test checks both agree)."""
    if not pvalues:
        return []
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(scaled, 1.0)
    return adjusted.tolist()


def per_seed(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """seed × row values of one column's runs (a row's runs differ only in their seed)."""
    return frame.pivot_table(index="seed", columns="row", values=metric, aggfunc="mean")


def cells(
    frame: pd.DataFrame, metric: str, claims: bool = True, rope: float = ROPE
) -> pd.DataFrame:
    """One row per (row, column) of a table: n, mean, std, the 95 % interval, and whether the row
    is tied with its column's best (`tied`: bold). `claims` False (an oracle's numbers) tests
    nothing; a column whose best mean has fewer than two seeds claims nothing either."""
    out = []
    for column, part in frame.dropna(subset=[metric]).groupby("column"):
        seeds = per_seed(part, metric)
        summary = []
        for row in seeds.columns:
            values = seeds[row].dropna().to_numpy()
            low, high, kind = interval(values)
            summary.append(
                {
                    "row": row,
                    "column": column,
                    "n": len(values),
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                    "low": low,
                    "high": high,
                    "interval": kind,
                }
            )
        table = pd.DataFrame(summary)
        table["leader"] = False
        table["tied"] = False
        table["test"] = ""
        table["paired"] = 0
        table["p_holm"] = math.nan
        table["p_posterior"] = math.nan
        leader = table.sort_values(["mean", "row"], ascending=[False, True]).index[0]
        table.loc[leader, "leader"] = True
        if claims and table.loc[leader, "n"] >= 2:
            _mark_ties(table, seeds, leader, rope)
        out.append(table)
    if not out:
        return pd.DataFrame(columns=CELL_COLUMNS)
    return pd.concat(out, ignore_index=True)[CELL_COLUMNS]


def _mark_ties(table: pd.DataFrame, seeds: pd.DataFrame, leader: int, rope: float) -> None:
    """Bold the leader and every row not shown to be worse than it by more than the ROPE."""
    best = seeds[table.loc[leader, "row"]]
    table.loc[leader, "tied"] = True
    tested = {}
    for i in table.index.drop(leader):
        found = gap(best, seeds[table.loc[i, "row"]], rope)
        table.loc[i, ["test", "paired"]] = [found.test, found.n]
        if found.test == "signed-rank":
            table.loc[i, "p_posterior"] = found.ahead
            table.loc[i, "tied"] = not found.claims(found.ahead)
        elif found.test == "t":
            tested[i] = found.ahead
    for i, p in zip(tested, holm(list(tested.values()))):
        table.loc[i, ["p_holm", "tied"]] = [p, p >= ALPHA]


def legend(table: pd.DataFrame, claims: bool = True, rope: float = ROPE) -> str:
    """The line under a table: which test, α and ROPE decide the bold, and which interval."""
    kinds = sorted(set(table["interval"]) - {""})
    names = {"t": "Student's t", "bootstrap": f"BCa bootstrap, n ≥ {MANY_SEEDS}"}
    span = (
        f"[ ]: {CONFIDENCE:.0%} interval of the mean ({', '.join(names[k] for k in kinds)})."
        if kinds
        else "No interval: one seed per cell."
    )
    if not claims:
        return f"Selected on the test set (an oracle): nothing here is bold or tested. {span}"
    tests = set(table["test"]) - {""}
    how = []
    if "t" in tests or not tests:
        how.append(f"one-sided paired t-test of 'gap ≤ {rope:g}', Holm over the column")
    if "signed-rank" in tests:
        how.append(
            f"from {MANY_SEEDS} paired seeds Bayesian signed-rank, worse if P(gap > {rope:g}) ≥ {1 - ALPHA:g}"
        )
    return (
        f"**Bold**: the column's best mean and every method not shown to be worse than it by more "
        f"than the ROPE of {rope:g} (paired by seed; {'; '.join(how)}; α = {ALPHA:g}); nothing "
        f"claimed with fewer than 2 seeds paired with the best. {span}"
    )


@dataclass(frozen=True)
class Ranking:
    """Average ranks of the rows present in every cell (rank 1 = best mean), Friedman's test over
    the cells, Nemenyi's pairwise p-values (None unless Friedman rejects), and its critical
    difference."""

    means: pd.DataFrame
    ranks: pd.Series
    friedman_p: float
    nemenyi: pd.DataFrame | None
    cd: float
    left_out: list[str]

    def significance(self) -> pd.DataFrame:
        """The pairwise p-values the diagram draws: all 1 (one group) unless Friedman rejects."""
        if self.nemenyi is not None:
            return self.nemenyi
        rows = list(self.ranks.index)
        return pd.DataFrame(1.0, index=rows, columns=rows)


def cell_means(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(group, column) × row means: one block per (dataset, noise, ratio) cell of the suite."""
    return runs.pivot_table(index=["group", "column"], columns="row", values=metric, aggfunc="mean")


def ranking(runs: pd.DataFrame, metric: str) -> Ranking | None:
    """Ranks, Friedman and Nemenyi over every cell (None below 2 cells or 3 complete rows: no
    Friedman test then). Rows missing from a cell cannot be ranked in it and are left out."""
    means = cell_means(runs, metric)
    complete = means.dropna(axis=1)
    left_out = sorted(set(means.columns) - set(complete.columns))
    if len(complete) < 2 or complete.shape[1] < 3:
        return None
    ranks = complete.rank(axis=1, ascending=False).mean().sort_values()
    with warnings.catch_warnings():  # constant blocks: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        friedman = sps.friedmanchisquare(*(complete[c].to_numpy() for c in complete.columns))
    p = float(friedman.pvalue) if not math.isnan(friedman.pvalue) else 1.0
    nemenyi = None
    if p < ALPHA:
        import scikit_posthocs

        nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(complete.to_numpy())
        nemenyi.index = nemenyi.columns = list(complete.columns)
        nemenyi = nemenyi.loc[ranks.index, ranks.index]
    k, blocks = complete.shape[1], len(complete)
    q = sps.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    cd = float(q * math.sqrt(k * (k + 1) / (6 * blocks)))
    return Ranking(complete, ranks, p, nemenyi, cd, left_out)


def win_tie_loss(
    runs: pd.DataFrame, metric: str, baseline: str, rope: float = ROPE
) -> pd.DataFrame:
    """Per row: cells where it beats the baseline row by more than the ROPE, ties, loses, and
    cannot be compared (fewer than 2 paired seeds). Each cell is one family: the t-tests of every
    row against the baseline (both directions) are Holm-adjusted together."""
    counts: dict[str, dict[str, int]] = {}
    for _, part in runs.dropna(subset=[metric]).groupby(["group", "column"]):
        seeds = per_seed(part, metric)
        if baseline not in seeds.columns:
            continue
        found = {
            row: gap(seeds[row], seeds[baseline], rope) for row in seeds.columns if row != baseline
        }
        t_rows = [row for row, g in found.items() if g.test == "t"]
        adjusted = dict(
            zip(
                [(r, d) for r in t_rows for d in ("ahead", "behind")],
                holm([getattr(found[r], d) for r in t_rows for d in ("ahead", "behind")]),
            )
        )
        for row, g in found.items():
            tally = counts.setdefault(row, {"wins": 0, "ties": 0, "losses": 0, "untested": 0})
            if not g.test:
                tally["untested"] += 1
                continue
            ahead = adjusted.get((row, "ahead"), g.ahead)
            behind = adjusted.get((row, "behind"), g.behind)
            outcome = "wins" if g.claims(ahead) else "losses" if g.claims(behind) else "ties"
            tally[outcome] += 1
    return pd.DataFrame.from_dict(
        counts, orient="index", columns=["wins", "ties", "losses", "untested"]
    )


def seeds_for_power(found: Gap, rope: float = ROPE) -> float | None:
    """Seeds at which a paired gap of the observed mean and spread would be shown to exceed the
    ROPE with `POWER` by the one-sided t-test at α (before Holm's correction, so a lower bound):
    the smallest n whose power (statsmodels) reaches it, searched over 2..`MAX_SEEDS` rather than
    by a root finder, which fails on large effects. None when the observed gap is inside the
    ROPE (no number of seeds makes it a claim), inf above `MAX_SEEDS`, NaN below 2 paired seeds."""
    if found.n < 2:
        return math.nan
    if abs(found.mean) <= rope:
        return None
    if found.sd == 0:
        return 2.0
    from statsmodels.stats.power import TTestPower

    effect = (abs(found.mean) - rope) / found.sd
    seeds = np.arange(2, MAX_SEEDS + 1)
    power = TTestPower().power(effect, seeds, ALPHA, alternative="larger")
    enough = np.flatnonzero(power >= POWER)
    return float(seeds[enough[0]]) if len(enough) else math.inf


def closest_pairs(runs: pd.DataFrame, metric: str, rope: float = ROPE) -> pd.DataFrame:
    """Per (group, column): the best mean and the runner-up (the closest claim a reader would
    make), their paired gap, and the seeds that gap would need (`seeds_for_power`)."""
    rows = []
    for (group, column), part in runs.dropna(subset=[metric]).groupby(["group", "column"]):
        seeds = per_seed(part, metric)
        if seeds.shape[1] < 2:
            continue
        order = seeds.mean().sort_values(ascending=False)
        best, second = order.index[0], order.index[1]
        found = gap(seeds[best], seeds[second], rope)
        rows.append(
            {
                "group": group,
                "column": column,
                "best": best,
                "second": second,
                "n": found.n,
                "gap": found.mean,
                "sd": found.sd,
                "seeds": seeds_for_power(found, rope),
            }
        )
    return pd.DataFrame(
        rows, columns=["group", "column", "best", "second", "n", "gap", "sd", "seeds"]
    )


def seeds_needed_line(pairs: pd.DataFrame, ran: int) -> str:
    """One line for the report's summary: the seeds the closest pair of each cell would need,
    against the seeds that ran."""
    if pairs.empty:
        return ""
    tested = pairs[pairs["n"] >= 2]
    inside = int(tested["seeds"].isna().sum())
    needed = tested["seeds"].dropna().astype(float)
    finite = needed[np.isfinite(needed)]
    parts = []
    if not finite.empty:
        parts.append(
            f"{finite.median():g} (median; range {finite.min():g}–{finite.max():g}) for the "
            f"closest pair of {len(finite)} cell(s) to show its gap with {POWER:.0%} power at "
            f"α = {ALPHA:g}"
        )
    if len(needed) > len(finite):
        parts.append(f"{len(needed) - len(finite)} would need more than {MAX_SEEDS}")
    if inside:
        parts.append(f"{inside} inside the ROPE (never a claim)")
    if len(pairs) > len(tested):
        parts.append(f"{len(pairs) - len(tested)} with fewer than 2 paired seeds")
    return f"{'; '.join(parts)}; {ran} seed(s) ran"

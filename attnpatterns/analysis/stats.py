"""Statistics over heads: permutation tests, bootstrap intervals, majority-type tests and a correlation.

The maps of one head are not independent (a head that attends to [SEP] does so for most inputs), so the unit
of every test and interval here is the head: permutations move whole heads between groups, and the bootstrap
resamples heads and then pools their maps. The resampling itself is done by ``scipy.stats.permutation_test``
and
``scipy.stats.bootstrap``: each sample handed to SciPy is an array of head *indices*, and the statistic looks
the indices up in a (heads x types) count matrix, so one resampling call yields all five proportions at once.

Every random procedure takes an explicit ``seed``; the same seed gives the same numbers.
"""

from __future__ import annotations

import gc
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from attnpatterns.analysis.distributions import HeadCounts
from attnpatterns.constants import PATTERN_TYPES

HETEROGENEOUS = PATTERN_TYPES.index("heterogeneous")
_BATCH = 500  # resamples per vectorised call: bounds memory at ~ batch x heads x 5 integers


def _pooled(counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Pooled type proportions of the heads ``idx`` (..., n) -> (..., 5)."""
    summed = counts[idx].sum(axis=-2)  # (..., 5)
    return summed / summed.sum(axis=-1, keepdims=True)


def _tvd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total variation distance between distributions along the last axis."""
    return 0.5 * np.abs(p - q).sum(axis=-1)


# ------------------------------------------------------------------------------------------------------------
# Permutation tests
# ------------------------------------------------------------------------------------------------------------


@dataclass
class PermutationResult:
    """Group A vs group B: per-type difference in pooled proportion (A - B) and total variation distance.

    ``p_types`` are two-sided, NaN for a type that occurs in no map (or in every map) of either group;
    ``p_tvd`` is one-sided (a larger distance is more extreme). ``exact`` is True when every distinct
    relabelling was enumerated instead of sampled.
    """

    prop_a: np.ndarray  # (5,)
    prop_b: np.ndarray  # (5,)
    differences: np.ndarray  # (5,)
    p_types: np.ndarray  # (5,)
    tvd: float
    p_tvd: float
    n_resamples: int
    exact: bool
    paired: bool = False


def permutation_test_heads(
    a: HeadCounts, b: HeadCounts, n_permutations: int = 10_000, seed: int = 0
) -> PermutationResult:
    """Permutation test of two disjoint groups of heads: are their pattern-type distributions the same?

    Under the null hypothesis the group labels are exchangeable between heads, so whole heads (with all their
    maps) are shuffled between the groups. When there are no more distinct splits than ``n_permutations`` the
    test is exact.
    """
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both groups need at least one head")
    counts = np.concatenate([a.counts, b.counts])  # (n_a + n_b, 5)
    data = (np.arange(len(a)), np.arange(len(a), len(a) + len(b)))

    def diff(x, y, axis=-1):
        return _pooled(counts, x) - _pooled(counts, y)

    def tvd(x, y, axis=-1):
        return _tvd(_pooled(counts, x), _pooled(counts, y))

    n_distinct = math.comb(len(a) + len(b), len(a))
    return _run_permutations(
        data, diff, tvd, "independent", n_permutations, seed, n_distinct, counts, paired=False
    )


def paired_permutation_test_heads(
    a: HeadCounts, b: HeadCounts, n_permutations: int = 10_000, seed: int = 0
) -> PermutationResult:
    """Paired permutation test: the same heads measured twice (e.g. in the pruned and in the full model).

    Under the null hypothesis the two measurements of a head are exchangeable, so each head's pair is swapped
    or not at random (a sign-flip test over heads).
    """
    if a.heads != b.heads:
        raise ValueError("a paired test needs the same heads, in the same order, in both groups")
    if len(a) == 0:
        raise ValueError("a paired test needs at least one head")
    n = len(a)
    counts = np.concatenate([a.counts, b.counts])
    data = (np.arange(n), np.arange(n, 2 * n))

    def diff(x, y, axis=-1):
        return _pooled(counts, x) - _pooled(counts, y)

    def tvd(x, y, axis=-1):
        return _tvd(_pooled(counts, x), _pooled(counts, y))

    return _run_permutations(data, diff, tvd, "samples", n_permutations, seed, 2**n, counts, paired=True)


def _run_permutations(data, diff, tvd, permutation_type, n_permutations, seed, n_distinct, counts, paired):
    if n_permutations < 1:
        raise ValueError("n_permutations must be at least 1")
    common = dict(
        permutation_type=permutation_type, vectorized=True, n_resamples=n_permutations, batch=_BATCH
    )
    # The same seed for both calls: the per-type and the omnibus statistics see the same relabellings.
    per_type = sps.permutation_test(
        data, diff, alternative="two-sided", rng=np.random.default_rng(seed), **common
    )
    omnibus = sps.permutation_test(
        data, tvd, alternative="greater", rng=np.random.default_rng(seed), **common
    )
    exact = n_distinct <= n_permutations
    p_types = np.clip(np.asarray(per_type.pvalue, dtype=float), 0.0, 1.0)
    # A type that no map (or every map) has is not tested: NaN keeps it out of multiple-comparison families.
    type_totals = counts.sum(axis=0)
    p_types[(type_totals == 0) | (type_totals == counts.sum())] = np.nan
    return PermutationResult(
        prop_a=_pooled(counts, data[0]),
        prop_b=_pooled(counts, data[1]),
        differences=np.asarray(per_type.statistic, dtype=float),
        p_types=p_types,
        tvd=float(omnibus.statistic),
        p_tvd=float(min(1.0, omnibus.pvalue)),
        n_resamples=int(n_distinct if exact else n_permutations),
        exact=exact,
        paired=paired,
    )


# ------------------------------------------------------------------------------------------------------------
# Bootstrap intervals
# ------------------------------------------------------------------------------------------------------------


def bootstrap_proportions(
    counts: HeadCounts, n_resamples: int = 5_000, confidence_level: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap interval for each pooled type proportion: resample heads with replacement, pool their maps.

    Uses BCa intervals, falling back to percentile intervals where BCa is undefined (e.g. every head has the
    same proportion). Returns ``(low, high)``, each (5,); NaN when there are fewer than two heads.
    """
    if len(counts) < 2:
        return np.full(len(PATTERN_TYPES), np.nan), np.full(len(PATTERN_TYPES), np.nan)
    table = counts.counts

    def stat(idx, axis=-1):
        return np.moveaxis(_pooled(table, idx), -1, 0)  # (5, ...) as SciPy wants outputs first

    return _bootstrap((np.arange(len(counts)),), stat, n_resamples, confidence_level, seed)


def bootstrap_difference(
    a: HeadCounts,
    b: HeadCounts,
    n_resamples: int = 5_000,
    confidence_level: float = 0.95,
    seed: int = 0,
    paired: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap interval for the per-type difference in pooled proportion, A - B.

    Independent groups are resampled separately; ``paired=True`` (same heads in both) resamples heads jointly.
    """
    if len(a) < 2 or len(b) < 2:
        return np.full(len(PATTERN_TYPES), np.nan), np.full(len(PATTERN_TYPES), np.nan)
    table = np.concatenate([a.counts, b.counts])
    data = (np.arange(len(a)), np.arange(len(a), len(a) + len(b)))

    def stat(x, y, axis=-1):
        return np.moveaxis(_pooled(table, x) - _pooled(table, y), -1, 0)

    return _bootstrap(data, stat, n_resamples, confidence_level, seed, paired=paired)


def _bootstrap(data, stat, n_resamples, confidence_level, seed, paired=False):
    if not 0 < confidence_level < 1:
        raise ValueError("confidence_level must lie strictly between 0 and 1")
    common = dict(
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=confidence_level,
        batch=_BATCH,
        paired=paired,
    )
    with warnings.catch_warnings():
        # BCa is undefined for degenerate data (all resamples equal); we fall back below instead of warning.
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.bootstrap(data, stat, method="BCa", rng=np.random.default_rng(seed), **common)
        low, high = (
            np.array(res.confidence_interval.low, float),
            np.array(res.confidence_interval.high, float),
        )
        bad = ~(np.isfinite(low) & np.isfinite(high))
        if bad.any():
            pct = sps.bootstrap(data, stat, method="percentile", rng=np.random.default_rng(seed), **common)
            low[bad] = np.asarray(pct.confidence_interval.low, float)[bad]
            high[bad] = np.asarray(pct.confidence_interval.high, float)[bad]
    return low, high


# ------------------------------------------------------------------------------------------------------------
# Majority types
# ------------------------------------------------------------------------------------------------------------


@dataclass
class MajorityTestResult:
    """Test of independence between group (A/B) and per-head majority type."""

    statistic: float
    p_value: float
    method: str
    table: np.ndarray  # (2, 5) heads per (group, majority type)


def majority_test(
    a: HeadCounts, b: HeadCounts, n_resamples: int = 10_000, seed: int = 0, min_expected: float = 5.0
) -> MajorityTestResult:
    """Do the two groups of heads differ in their majority types?

    A 2 x k contingency table (group x majority type, empty types dropped). Pearson's chi-square when every
    expected count is at least ``min_expected``; otherwise Fisher's exact test (2 x 2 exactly; larger tables
    by the Fisher-Freeman-Halton statistic with Monte Carlo p-values). NaN p-value when only one majority type
    occurs (nothing to test).
    """
    table = np.zeros((2, len(PATTERN_TYPES)), dtype=np.int64)
    for row, group in enumerate((a, b)):
        for t in group.majority():
            table[row, t] += 1
    used = table[:, table.sum(axis=0) > 0]
    if len(a) == 0 or len(b) == 0 or used.shape[1] < 2:
        return MajorityTestResult(
            float("nan"), float("nan"), "not testable (one majority type or empty group)", table
        )
    expected = sps.contingency.expected_freq(used)
    if expected.min() >= min_expected:
        res = sps.chi2_contingency(used, correction=False)
        return MajorityTestResult(float(res.statistic), float(res.pvalue), "chi-square", table)
    if used.shape[1] == 2:
        res = sps.fisher_exact(used)
        return MajorityTestResult(float(res.statistic), float(res.pvalue), "Fisher exact (2x2)", table)
    method = sps.MonteCarloMethod(n_resamples=n_resamples, rng=np.random.default_rng(seed))
    res = sps.fisher_exact(used, method=method)
    return MajorityTestResult(
        float(res.statistic), float(res.pvalue), f"Fisher-Freeman-Halton (Monte Carlo, {n_resamples})", table
    )


# ------------------------------------------------------------------------------------------------------------
# Correlation between "heterogeneous map" and "surviving head"
# ------------------------------------------------------------------------------------------------------------


@dataclass
class CorrelationResult:
    """Point-biserial (phi) correlation over maps, with a p-value from permuting survival over heads."""

    r: float
    p_value: float
    n_maps: int
    n_heads: int
    n_survivors: int
    n_resamples: int
    exact: bool


def heterogeneity_survival_correlation(
    counts: HeadCounts, survivors, n_permutations: int = 10_000, seed: int = 0
) -> CorrelationResult:
    """Correlation between "this map is heterogeneous" and "this map's head is a super-survivor".

    One observation per map of ``counts`` (normally the full model), both variables binary, so Pearson's r
    here is the phi coefficient (equivalently the point-biserial r). ``scipy.stats.pearsonr`` gives r; its own
    p-value would treat maps as independent, so the p-value instead comes from permuting the survivor labels
    over heads. r is NaN when either variable is constant (no survivors, every head survives, or no/only
    heterogeneous maps).
    """
    keep = set(survivors)
    is_surv = np.array([h in keep for h in counts.heads], dtype=bool)
    n_maps = counts.n_maps
    het = counts.counts[:, HETEROGENEOUS]
    n_total, het_total = int(n_maps.sum()), int(het.sum())
    n_surv = int(is_surv.sum())
    result = dict(n_maps=n_total, n_heads=len(counts), n_survivors=n_surv)
    if n_surv in (0, len(counts)) or het_total in (0, n_total):
        return CorrelationResult(float("nan"), float("nan"), n_resamples=0, exact=False, **result)

    # Map-level 0/1 vectors, one entry per map (heads in order, heterogeneous maps first within a head).
    x = np.concatenate([np.r_[np.ones(h), np.zeros(n - h)] for h, n in zip(het, n_maps)])
    y = np.repeat(is_surv.astype(float), n_maps)
    r = float(sps.pearsonr(x, y).statistic)

    def phi(idx_surv, idx_rest, axis=-1):
        # Pearson's r of two binary variables from sums: S_xy = het maps of survivors, S_y = survivor maps.
        s_xy = het[idx_surv].sum(axis=-1)
        s_y = n_maps[idx_surv].sum(axis=-1)
        num = n_total * s_xy - het_total * s_y
        den = np.sqrt(het_total * (n_total - het_total) * s_y * (n_total - s_y).astype(float))
        return num / den

    idx = np.arange(len(counts))
    data = (idx[is_surv], idx[~is_surv])
    res = sps.permutation_test(
        data,
        phi,
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_permutations,
        alternative="two-sided",
        batch=_BATCH,
        rng=np.random.default_rng(seed),
    )
    n_distinct = math.comb(len(counts), n_surv)
    exact = n_distinct <= n_permutations
    return CorrelationResult(
        r,
        float(min(1.0, res.pvalue)),
        n_resamples=int(n_distinct if exact else n_permutations),
        exact=exact,
        **result,
    )


# ------------------------------------------------------------------------------------------------------------
# Multiple comparisons
# ------------------------------------------------------------------------------------------------------------

#: Methods of ``statsmodels.stats.multitest.multipletests`` accepted here (plus "none").
CORRECTION_METHODS: tuple[str, ...] = tuple(
    "holm bonferroni fdr_bh fdr_by holm-sidak sidak hommel simes-hochberg none".split()
)


def adjust_pvalues(p_values, method: str = "holm") -> np.ndarray:
    """Adjust a family of p-values with ``statsmodels``' ``multipletests``; NaNs are left out and kept as "
    "NaN."""
    if method not in CORRECTION_METHODS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTION_METHODS)}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if method == "none":
        out[finite] = p[finite]
    elif finite.any():
        from statsmodels.stats.multitest import multipletests

        # statsmodels' Holm branch calls gc.collect(), which costs ~0.2 s per call in a process holding torch
        # and pandas; freezing the current objects makes that collection cheap without changing anything else.
        gc.freeze()
        try:
            out[finite] = multipletests(p[finite], method=method)[1]
        finally:
            gc.unfreeze()
    return out

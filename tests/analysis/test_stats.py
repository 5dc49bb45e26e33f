"""Statistics over heads on inputs whose answer is known, and against brute-force reference computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from attnpatterns.analysis.distributions import HeadCounts, head_counts, layer_distribution, majority_frame
from attnpatterns.analysis.stats import (
    HETEROGENEOUS,
    adjust_pvalues,
    bootstrap_difference,
    bootstrap_proportions,
    heterogeneity_survival_correlation,
    majority_test,
    paired_permutation_test_heads,
    permutation_test_heads,
)
from attnpatterns.constants import PATTERN_TYPES

from .builders import SURVIVORS, all_heads, table_frame

VERT = PATTERN_TYPES.index("vertical")


def counts_of(rows: list[list[int]], first_layer: int = 0) -> HeadCounts:
    return HeadCounts(tuple((first_layer, i) for i in range(len(rows))), np.array(rows))


def one_type(n_heads: int, type_index: int, n_maps: int = 20, first_layer: int = 0) -> HeadCounts:
    row = [0] * 5
    row[type_index] = n_maps
    return counts_of([row] * n_heads, first_layer)


# ---- distributions
# ---------------------------------------------------------------------------------------------


def test_head_counts_majority_and_layers():
    label = lambda layer, head, ex: "heterogeneous" if ex < 12 else "vertical"  # noqa: E731
    frame = table_frame(label, n_examples=20, kinds=("raw",))
    counts = head_counts(frame, "raw")
    assert counts.heads == tuple(all_heads()) and counts.total == 24 * 20
    np.testing.assert_allclose(counts.proportions()[HETEROGENEOUS], 0.6)
    assert (counts.majority() == HETEROGENEOUS).all()
    maj = majority_frame(counts, SURVIVORS)
    assert maj["survivor"].sum() == len(SURVIVORS) and set(maj["majority_type"]) == {"heterogeneous"}
    layers = layer_distribution(counts)
    assert len(layers) == 4 * 5 and np.allclose(layers.groupby("layer")["proportion"].sum(), 1.0)
    assert head_counts(frame, "normed").total == 0


def test_majority_ties_go_to_the_first_type():
    counts = counts_of([[5, 0, 0, 0, 5], [0, 0, 0, 5, 5]])
    assert [PATTERN_TYPES[i] for i in counts.majority()] == ["vertical", "block"]


# ---- permutation tests
# -----------------------------------------------------------------------------------------


def test_survivors_all_heterogeneous_vs_rest_all_vertical():
    surv, rest = one_type(6, HETEROGENEOUS), one_type(18, VERT, first_layer=1)
    res = permutation_test_heads(surv, rest, n_permutations=2000, seed=0)
    assert res.differences[HETEROGENEOUS] == pytest.approx(1.0)
    assert res.p_types[HETEROGENEOUS] < 0.002 and res.p_tvd < 0.001 and res.tvd == pytest.approx(1.0)
    assert np.isnan(res.p_types[PATTERN_TYPES.index("block")])  # no block map anywhere: nothing to test


def test_identical_distributions_give_large_p():
    row = [10, 2, 3, 1, 4]
    a, b = counts_of([row] * 5), counts_of([row] * 15, first_layer=1)
    res = permutation_test_heads(a, b, n_permutations=2000, seed=0)
    np.testing.assert_allclose(res.differences, 0, atol=1e-12)
    assert (res.p_types == 1).all() and res.p_tvd == 1


def test_permutation_p_matches_brute_force_enumeration():
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 8, size=(7, 5))
    a, b = counts_of(rows[:3].tolist()), counts_of(rows[3:].tolist(), first_layer=1)
    res = permutation_test_heads(a, b, n_permutations=10_000, seed=0)
    assert res.exact and res.n_resamples == 35

    def pooled(idx):
        c = rows[list(idx)].sum(axis=0)
        return c / c.sum()

    observed = pooled(range(3)) - pooled(range(3, 7))
    null, tvds = [], []
    for combo in itertools.combinations(range(7), 3):
        rest = [i for i in range(7) if i not in combo]
        d = pooled(combo) - pooled(rest)
        null.append(d)
        tvds.append(0.5 * np.abs(d).sum())
    null = np.array(null)
    eps = 1e-12
    less = (null <= observed + eps).mean(axis=0)
    greater = (null >= observed - eps).mean(axis=0)
    expected = np.minimum(1, 2 * np.minimum(less, greater))
    np.testing.assert_allclose(res.p_types, expected)
    assert res.p_tvd == pytest.approx((np.array(tvds) >= 0.5 * np.abs(observed).sum() - eps).mean())


def test_paired_test_matches_sign_flip_enumeration():
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 9, size=(5, 5)), rng.integers(0, 9, size=(5, 5))
    a, b = counts_of(x.tolist()), counts_of(y.tolist())
    res = paired_permutation_test_heads(a, b, n_permutations=10_000, seed=0)
    assert res.exact and res.n_resamples == 32 and res.paired

    def diff(xx, yy):
        return xx.sum(0) / xx.sum() - yy.sum(0) / yy.sum()

    observed = diff(x, y)
    null = []
    for flips in itertools.product([False, True], repeat=5):
        f = np.array(flips)[:, None]
        null.append(diff(np.where(f, y, x), np.where(f, x, y)))
    null = np.array(null)
    less = (null <= observed + 1e-12).mean(0)
    greater = (null >= observed - 1e-12).mean(0)
    np.testing.assert_allclose(res.p_types, np.minimum(1, 2 * np.minimum(less, greater)))


def test_paired_test_needs_the_same_heads():
    with pytest.raises(ValueError, match="same heads"):
        paired_permutation_test_heads(one_type(3, VERT), one_type(3, VERT, first_layer=1))


def test_permutation_test_is_reproducible_with_a_seed():
    rng = np.random.default_rng(0)
    a = counts_of(rng.integers(0, 10, (12, 5)).tolist())
    b = counts_of(rng.integers(0, 10, (30, 5)).tolist(), first_layer=1)
    r1, r2 = permutation_test_heads(a, b, 500, seed=7), permutation_test_heads(a, b, 500, seed=7)
    np.testing.assert_array_equal(r1.p_types, r2.p_types)
    assert r1.p_tvd == r2.p_tvd and not r1.exact


# ---- bootstrap
# --------------------------------------------------------------------------------------------------


def test_bootstrap_interval_covers_a_known_proportion():
    """Heads whose maps are heterogeneous with head-specific probabilities averaging 0.3: the 95% interval
    over heads should cover 0.3 in about 95% of simulated studies."""
    rng = np.random.default_rng(0)
    truth, covered, n_studies = 0.3, 0, 60
    for study in range(n_studies):
        p_head = rng.beta(3, 7, size=40)  # mean 0.3, heads differ
        het = rng.binomial(50, p_head)
        rows = [[50 - h, 0, 0, 0, h] for h in het]
        low, high = bootstrap_proportions(counts_of(rows), n_resamples=1000, seed=study)
        covered += low[HETEROGENEOUS] <= truth <= high[HETEROGENEOUS]
    assert covered / n_studies >= 0.85


def test_bootstrap_degenerate_and_tiny_groups():
    low, high = bootstrap_proportions(one_type(5, VERT), n_resamples=200)
    assert low[VERT] == high[VERT] == 1 and low[HETEROGENEOUS] == high[HETEROGENEOUS] == 0
    low, high = bootstrap_proportions(one_type(1, VERT), n_resamples=200)
    assert np.isnan(low).all() and np.isnan(high).all()


def test_bootstrap_difference_brackets_the_estimate():
    rng = np.random.default_rng(1)
    a = counts_of([[20 - h, 0, 0, 0, h] for h in rng.binomial(20, 0.6, 10)])
    b = counts_of([[20 - h, 0, 0, 0, h] for h in rng.binomial(20, 0.2, 30)], first_layer=1)
    low, high = bootstrap_difference(a, b, n_resamples=1000, seed=0)
    est = a.proportions() - b.proportions()
    assert low[HETEROGENEOUS] <= est[HETEROGENEOUS] <= high[HETEROGENEOUS] and low[HETEROGENEOUS] > 0


# ---- majority types
# ---------------------------------------------------------------------------------------------


def test_majority_test_picks_fisher_for_small_and_chi_square_for_large_counts():
    small = majority_test(one_type(6, HETEROGENEOUS), one_type(18, VERT, first_layer=1))
    assert small.method == "Fisher exact (2x2)" and small.p_value < 1e-4
    assert small.p_value == pytest.approx(sps.fisher_exact([[0, 6], [18, 0]]).pvalue)
    big_a = counts_of([[10, 0, 0, 0, 0]] * 30 + [[0, 0, 0, 0, 10]] * 30)
    big_b = counts_of([[10, 0, 0, 0, 0]] * 30 + [[0, 0, 0, 0, 10]] * 30, first_layer=1)
    large = majority_test(big_a, big_b)
    assert large.method == "chi-square" and large.p_value == pytest.approx(1.0)
    three = majority_test(
        counts_of([[5, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 0, 0, 5]]),
        counts_of([[5, 0, 0, 0, 0]] * 4 + [[0, 0, 0, 0, 5]], first_layer=1),
    )
    assert three.method.startswith("Fisher-Freeman-Halton") and 0 < three.p_value <= 1
    none = majority_test(one_type(3, VERT), one_type(3, VERT, first_layer=1))
    assert np.isnan(none.p_value)


# ---- correlation
# ------------------------------------------------------------------------------------------------


def test_correlation_is_one_when_exactly_the_survivors_are_heterogeneous():
    heads = all_heads()
    rows = [[0, 0, 0, 0, 20] if h in SURVIVORS else [20, 0, 0, 0, 0] for h in heads]
    res = heterogeneity_survival_correlation(
        HeadCounts(tuple(heads), np.array(rows)), SURVIVORS, 2000, seed=0
    )
    assert res.r == pytest.approx(1.0) and res.p_value < 0.002 and res.n_maps == 480


def test_correlation_is_zero_when_every_head_is_alike():
    heads = all_heads()
    rows = [[15, 0, 0, 0, 5]] * len(heads)
    res = heterogeneity_survival_correlation(
        HeadCounts(tuple(heads), np.array(rows)), SURVIVORS, 2000, seed=0
    )
    assert res.r == pytest.approx(0.0, abs=1e-12) and res.p_value == pytest.approx(1.0)


def test_correlation_matches_pearson_and_the_permutation_statistic():
    rng = np.random.default_rng(2)
    heads = all_heads()
    n_maps = rng.integers(5, 15, len(heads))
    het = rng.binomial(n_maps, 0.3)
    rows = np.zeros((len(heads), 5), int)
    rows[:, HETEROGENEOUS], rows[:, VERT] = het, n_maps - het
    res = heterogeneity_survival_correlation(HeadCounts(tuple(heads), rows), SURVIVORS, 500, seed=0)
    x = np.concatenate([[1] * h + [0] * (n - h) for h, n in zip(het, n_maps)])
    y = np.concatenate([[h in SURVIVORS] * n for h, n in zip(heads, n_maps)]).astype(float)
    assert res.r == pytest.approx(sps.pointbiserialr(y, x).statistic)
    assert 0 < res.p_value <= 1


def test_correlation_undefined_without_survivors():
    heads = all_heads()
    res = heterogeneity_survival_correlation(
        HeadCounts(tuple(heads), np.array([[15, 0, 0, 0, 5]] * 24)), [], 100
    )
    assert np.isnan(res.r) and np.isnan(res.p_value)


# ---- multiple comparisons
# ---------------------------------------------------------------------------------------


def test_adjust_pvalues_matches_statsmodels_and_keeps_nan():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    out = adjust_pvalues(p, "holm")
    np.testing.assert_allclose(out[[0, 2, 3, 4]], multipletests(p[[0, 2, 3, 4]], method="holm")[1])
    assert np.isnan(out[1])
    np.testing.assert_allclose(adjust_pvalues(p, "none")[[0, 2]], [0.01, 0.04])
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues(p, "magic")

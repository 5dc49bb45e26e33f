"""Preprocessing: validation errors, the documented normalisation, and invariance to padding, scale and size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnpatterns.patterns.preprocess import (
    MapError,
    N_COVERAGE_STATISTICS,
    PreprocessConfig,
    coverage_statistics,
    features,
    band_statistics,
    lone_column_statistics,
    normalise_map,
    prepare_map,
    preprocess_maps,
    segment_statistics,
    strip_padding,
    token_statistics,
    validate_map,
)
from attnpatterns.patterns.robustness import TREATMENTS
from tests.patterns.synthetic import synthetic_map

CONFIG = PreprocessConfig()


@pytest.fixture
def maps():
    rng = np.random.default_rng(0)
    types = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
    return [synthetic_map(t, int(n), rng, kind) for t in types for n in (4, 13, 77) for kind in ("raw", "normed")]


@pytest.mark.parametrize(
    "array, message",
    [
        (np.ones((3, 4)), "not square"),
        (np.ones(5), "2-D"),
        (np.ones((2, 3, 3)), "2-D"),
        (np.full((3, 3), np.nan), "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN or infinite"),
        (np.array([[0.5, -0.1], [0.2, 0.8]]), "negative"),
        (np.zeros((4, 4)), "all zeros"),
        (np.ones((1, 1)), "at least 2"),
        (np.array([["a", "b"], ["c", "d"]]), "dtype"),
    ],
)
def test_bad_maps_are_refused_clearly(array, message):
    with pytest.raises(MapError, match=message):
        validate_map(array, name="m1")
    with pytest.raises(MapError, match="m1"):
        validate_map(array, name="m1")


def test_strip_padding_removes_only_trailing_zero_rows_and_columns():
    a = np.random.default_rng(0).random((5, 5)).astype(np.float32)
    padded = np.zeros((9, 9), np.float32)
    padded[:5, :5] = a
    assert np.array_equal(strip_padding(padded), a)
    assert np.array_equal(strip_padding(a), a)
    only_column = np.zeros((6, 6), np.float32)
    only_column[0, 3] = 1.0  # a map whose row 3 is empty but column 3 is not: both kept
    assert strip_padding(only_column).shape == (4, 4)


def test_normalisation_is_division_by_the_map_maximum():
    normed = np.array([[2.0, 6.0], [1.0, 3.0]], np.float32)  # norm-weighted maps: rows do not sum to one
    out = normalise_map(normed)
    assert out.max() == pytest.approx(1.0)
    assert np.allclose(out, normed / 6.0)
    assert np.allclose(prepare_map(normed), normed / 6.0)


def test_feature_shapes_for_4_to_512_tokens():
    rng = np.random.default_rng(1)
    arrays = [rng.random((n, n)).astype(np.float32) for n in (4, 5, 31, 32, 33, 128, 512)]
    feats = preprocess_maps(arrays, CONFIG)
    assert feats.images.shape == (7, CONFIG.n_channels, CONFIG.grid, CONFIG.grid)
    assert feats.vectors.shape == (7, CONFIG.n_vector)
    assert torch.isfinite(feats.images).all() and torch.isfinite(feats.vectors).all()
    assert feats.images.amax(dim=(2, 3)).allclose(torch.ones(7, CONFIG.n_channels))


def test_zero_padding_gives_identical_features(maps):
    base = preprocess_maps(maps, CONFIG)
    for treatment in ("pad-128", "pad-double"):
        padded = preprocess_maps([TREATMENTS[treatment](m) for m in maps], CONFIG)
        assert torch.equal(base.images, padded.images)
        assert torch.equal(base.vectors, padded.vectors)


def test_positive_rescaling_gives_identical_features(maps):
    base = preprocess_maps(maps, CONFIG)
    scaled = preprocess_maps([m * 37.5 for m in maps], CONFIG)
    assert torch.allclose(base.images, scaled.images, atol=1e-6)
    assert torch.allclose(base.vectors, scaled.vectors, atol=2e-5)  # float32 rounding in prefix sums


def test_resizing_changes_features_little(maps):
    big = [m for m in maps if m.shape[0] >= 13]
    base = preprocess_maps(big, CONFIG)
    for treatment in ("resize-up", "resize-down"):
        other = preprocess_maps([TREATMENTS[treatment](m) for m in big], CONFIG)
        # mean absolute change of the pooled image is small compared with its range [0, 1]
        assert (base.images - other.images).abs().mean() < 0.08
        entropies = slice(3 * CONFIG.grid - 1, 3 * CONFIG.grid + 1)  # after the diagonal and column profiles
        assert (base.vectors[:, entropies] - other.vectors[:, entropies]).abs().max() < 0.25  # bilinear smooths


def test_batches_and_order_do_not_change_features(maps):
    together = preprocess_maps(maps, CONFIG, batch_size=3)
    one_by_one = [preprocess_maps([m], CONFIG) for m in maps]
    for i, single in enumerate(one_by_one):
        assert torch.allclose(together.images[i], single.images[0], atol=1e-6)
        assert torch.allclose(together.vectors[i], single.vectors[0], atol=1e-6)


def test_diagonal_and_vertical_show_in_the_profiles():
    rng = np.random.default_rng(2)
    diag = preprocess_maps([synthetic_map("diagonal", 60, rng)], CONFIG).vectors[0]
    vert = preprocess_maps([synthetic_map("vertical", 60, rng)], CONFIG).vectors[0]
    g = CONFIG.grid
    assert diag[g - 2 : g + 1].max() == pytest.approx(1.0)  # peak at offset -1, 0 or +1 of the grid
    assert vert[2 * g - 1] > 5 * diag[2 * g - 1]  # the top column holds far more of the mass


def test_features_refuse_non_square_batches():
    with pytest.raises(MapError):
        features(torch.ones(2, 3, 4))


def test_config_round_trip_and_checks():
    assert PreprocessConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ValueError):
        PreprocessConfig(grid=4)


def test_token_statistics_recognise_the_patterns():
    rng = np.random.default_rng(3)

    def stats(pattern):
        return token_statistics(torch.from_numpy(synthetic_map(pattern, 24, rng))[None])[0]

    names = ["diag-1", "diag0", "diag+1", "top1", "top2", "top4", "first", "last", "entropy", "on_band", "on_top",
             "rest", "block"]
    vertical, diagonal, block, hetero = (dict(zip(names, stats(p).tolist()))
                                         for p in ("vertical", "diagonal", "block", "heterogeneous"))
    assert vertical["top2"] > 0.7 and vertical["on_band"] < 0.5
    assert max(diagonal["diag-1"], diagonal["diag0"], diagonal["diag+1"]) > 0.7 and diagonal["on_band"] > 0.9
    assert block["block"] > 0.5 and hetero["block"] < 0.3
    assert hetero["entropy"] > vertical["entropy"]
    every = token_statistics(torch.rand(4, 9, 9))
    assert every.shape == (4, 13) and (every >= 0).all() and (every <= 1).all()
    assert token_statistics(torch.rand(2, 2, 2)).shape == (2, 13)


def test_coverage_statistics_count_lit_rows():
    t = 12
    diagonal = np.eye(t, dtype=np.float32)
    half_stripe = diagonal.copy()
    half_stripe[: t // 2, 0] = 0.5  # [CLS] column teal in the top half of the rows only
    full_stripe = diagonal.copy()
    full_stripe[:, 0] = 0.5
    got = {name: coverage_statistics(torch.from_numpy(m)[None])[0].numpy()
           for name, m in (("diag", diagonal), ("half", half_stripe), ("full", full_stripe))}
    first_col = slice(4, 8)  # levels 0.25, 0.4, 0.6 and half the row max, for column 0
    assert np.allclose(got["diag"][first_col], 0) and np.allclose(got["diag"][12:16], 1)  # diagonal lit everywhere
    assert np.allclose(got["full"][first_col], [1, 1, 0, 1])  # teal (0.5) in all other rows, not green (0.6)
    assert np.allclose(got["half"][first_col], [5 / 11, 5 / 11, 0, 5 / 11])  # rows 1..5 of the 11 other rows
    assert got["full"][16] > got["diag"][16]  # more cells lit at 0.1
    assert coverage_statistics(torch.rand(3, 2, 2)).shape == (3, N_COVERAGE_STATISTICS)


def test_checkpoints_from_before_coverage_statistics_keep_their_vector_size():
    legacy = {"grid": 32, "contrast": 50.0, "min_tokens": 2, "token_statistics": True}
    old = PreprocessConfig.from_dict(legacy)
    assert not old.coverage_statistics and old.n_vector == PreprocessConfig().n_vector - N_COVERAGE_STATISTICS
    assert PreprocessConfig.from_dict(PreprocessConfig().to_dict()).coverage_statistics


def test_size_statistic_is_the_log_token_count_of_the_unpadded_map():
    config = PreprocessConfig(size_statistic=True)
    assert config.n_vector == PreprocessConfig().n_vector + 1
    rng = np.random.default_rng(5)
    sizes = (2, 7, 40, 512, 600)
    arrays = [rng.random((t, t)) + 0.01 for t in sizes] + [np.pad(rng.random((7, 7)) + 0.01, (0, 9))]
    got = preprocess_maps(arrays, config).vectors[:, -1].numpy()
    # written out by hand: log T / log 512, capped at 1; the padded 7-token map counts 7 tokens
    expected = [min(1.0, np.log(t) / np.log(512)) for t in sizes] + [np.log(7) / np.log(512)]
    assert np.allclose(got, expected, atol=1e-6)
    # the rest of the vector and the images are those of the configuration without it
    plain = preprocess_maps(arrays, PreprocessConfig())
    assert torch.equal(preprocess_maps(arrays, config).vectors[:, :-1], plain.vectors)
    assert torch.equal(preprocess_maps(arrays, config).images, plain.images)


def test_checkpoints_from_before_the_size_statistic_keep_their_vector_size():
    legacy = PreprocessConfig().to_dict()
    del legacy["size_statistic"]
    assert not PreprocessConfig.from_dict(legacy).size_statistic
    on = PreprocessConfig(size_statistic=True)
    assert PreprocessConfig.from_dict(on.to_dict()) == on


def _lone_column_by_hand(a: np.ndarray) -> list[float]:
    """GUIDELINE.md §8's counts for one map, written out with loops: content rows, the column that is the largest
    cell of the most of them (then the more visible, then the leftmost), and its shares."""
    a = a / a.max()
    t = a.shape[0]
    rows = list(range(1, t - 1)) if t >= 4 else list(range(t))
    wins = [sum(1 for i in rows if a[i, c] == max(a[i])) for c in range(t)]
    seen = [sum(1 for i in rows if a[i, c] >= 0.1) for c in range(t)]
    best = 0
    for c in range(1, t):
        if (wins[c], seen[c]) > (wins[best], seen[best]):
            best = c
    clear = 0
    for i in rows:
        rest = [a[i, j] for j in range(t) if j != best]
        if a[i, best] >= max(rest) + 0.1:
            clear += 1
    runner_up = max(wins[c] for c in range(t) if c != best)
    n = len(rows)
    return [wins[best] / n, clear / n, sum(a[i, best] >= 0.1 for i in rows) / n,
            sum(a[i, best] >= 0.2 for i in rows) / n, runner_up / n]


def test_lone_column_statistics_match_a_row_by_row_count():
    rng = np.random.default_rng(11)
    cases = []
    for t in (2, 3, 4, 5, 9, 30):
        for _ in range(6):
            a = rng.random((t, t)) ** 3  # texture with a few bright cells
            if rng.random() < 0.5:  # a column lit in part of the rows
                col = int(rng.integers(t))
                lit = rng.random(t) < rng.uniform(0.3, 0.9)
                a[lit, col] += rng.uniform(0.3, 1.0)
            if rng.random() < 0.3:  # quantised values, so that rows hold ties
                a = np.round(a * 4) / 4 + 0.01
            cases.append(a.astype(np.float32))
    for a in cases:
        got = lone_column_statistics(torch.from_numpy(a / a.max())[None])[0].numpy()
        assert np.allclose(got, _lone_column_by_hand(a.astype(np.float64)), atol=1e-6), a.shape


def test_lone_column_statistics_separate_a_stripe_from_texture():
    t = 12
    stripe = np.full((t, t), 0.05)
    stripe[:, 3] = 1.0  # one column, brightest in every row
    texture = np.random.default_rng(3).random((t, t)) * 0.5 + 0.5  # everything about as bright
    s, h = lone_column_statistics(torch.tensor(np.stack([stripe, texture]), dtype=torch.float32)).numpy()
    assert np.allclose(s, [1, 1, 1, 1, 0])  # dominant, clearly so, visible and lit in every content row
    assert s[0] > h[0] and s[1] > h[1] and h[1] < 0.4


def test_lone_column_statistics_are_appended_only_when_asked():
    config = PreprocessConfig(lone_column_statistics=True)
    assert config.n_vector == PreprocessConfig().n_vector + 5
    arrays = [np.random.default_rng(9).random((t, t)) + 0.01 for t in (5, 17)]
    on, plain = preprocess_maps(arrays, config), preprocess_maps(arrays, PreprocessConfig())
    assert torch.equal(on.vectors[:, :-5], plain.vectors) and torch.equal(on.images, plain.images)
    legacy = PreprocessConfig().to_dict()
    del legacy["lone_column_statistics"]  # a checkpoint saved before the option existed
    assert not PreprocessConfig.from_dict(legacy).lone_column_statistics
    assert PreprocessConfig.from_dict(config.to_dict()) == config


def _band_by_hand(a: np.ndarray) -> list[float]:
    """GUIDELINE.md §8's staircase counts for one map, with loops: where each content row's largest cell lies."""
    a = a / a.max()
    t = a.shape[0]
    rows = list(range(1, t - 1)) if t >= 4 else list(range(t))
    top = {i: int(np.argmax(a[i])) for i in rows}  # leftmost of ties
    near2 = sum(abs(top[i] - i) <= 2 for i in rows) / len(rows)
    near5 = sum(abs(top[i] - i) <= 5 for i in rows) / len(rows)
    pairs = list(zip(rows, rows[1:]))
    ridge = 0.0
    if pairs:
        ridge = sum(abs(top[i] - i) <= 5 and abs(top[k] - k) <= 5 and 0 <= top[k] - top[i] <= 5
                    for i, k in pairs) / len(pairs)
    bright = [(i, j) for i in rows for j in range(t) if a[i, j] >= 0.4]
    on_band = sum(abs(i - j) <= 5 for i, j in bright) / len(bright) if bright else 0.0
    return [near2, near5, ridge, on_band]


def test_band_statistics_match_a_row_by_row_count():
    rng = np.random.default_rng(12)
    for t in (2, 3, 4, 6, 11, 40):
        for _ in range(6):
            a = rng.random((t, t)) ** 4
            if rng.random() < 0.6:  # a staircase of column pieces near the diagonal
                start = 0
                while start < t:
                    height = int(rng.integers(1, 5))
                    a[start : start + height, min(t - 1, start + int(rng.integers(0, 3)))] += 1.0
                    start += height
            got = band_statistics(torch.from_numpy((a / a.max()).astype(np.float32))[None])[0].numpy()
            assert np.allclose(got, _band_by_hand(a.astype(np.float32).astype(np.float64)), atol=1e-6), t


def test_band_statistics_tell_a_staircase_from_scattered_hot_spots():
    t = 20
    stairs = np.full((t, t), 0.02)
    for start in range(0, t, 3):  # pieces three rows tall, each on the next word
        stairs[start : start + 3, min(t - 1, start + 2)] = 1.0
    scattered = np.full((t, t), 0.02)
    for i, j in enumerate(np.random.default_rng(4).permutation(t)):
        scattered[i, j] = 1.0
    s, h = band_statistics(torch.tensor(np.stack([stairs, scattered]), dtype=torch.float32)).numpy()
    assert s[1] == 1.0 and s[2] > 0.9 and s[3] == 1.0  # every ridge cell near the line, moving forward
    assert h[1] < 0.6 and h[2] < 0.3 and h[3] < 0.6
    assert PreprocessConfig(band_statistics=True).n_vector == PreprocessConfig().n_vector + 4


def _coarse_by_hand(image: np.ndarray, k: int) -> list[float]:
    """One G x G channel area-averaged to k x k with explicit cell loops (cell i spans rows floor(i G / k) to
    ceil((i + 1) G / k), as adaptive average pooling does), divided by its largest cell, row by row."""
    g = image.shape[0]
    out = np.zeros((k, k))
    for i in range(k):
        r0, r1 = (i * g) // k, -((-(i + 1) * g) // k)
        for j in range(k):
            c0, c1 = (j * g) // k, -((-(j + 1) * g) // k)
            out[i, j] = image[r0:r1, c0:c1].mean()
    return list((out / out.max()).ravel())


@pytest.mark.parametrize("grid,k", [(32, 8), (10, 4), (12, 12)])
def test_coarse_image_is_the_pooled_channels_in_k_by_k_cells(grid, k):
    rng = np.random.default_rng(k)
    arrays = [rng.random((t, t)) ** 4 + 0.001 for t in (6, 23, 41)]
    config = PreprocessConfig(grid=grid, coarse_image=k)
    feats = preprocess_maps(arrays, config)
    assert config.n_vector == PreprocessConfig(grid=grid).n_vector + 2 * k * k
    for b in range(len(arrays)):
        images = feats.images[b].double().numpy()  # channel 0: the pooled map, 1: its row-max version
        want = _coarse_by_hand(images[0], k) + _coarse_by_hand(images[1], k)
        np.testing.assert_allclose(feats.vectors[b, -2 * k * k :].double().numpy(), want, rtol=1e-5, atol=1e-6)
    plain = preprocess_maps(arrays, PreprocessConfig(grid=grid))
    assert torch.equal(feats.vectors[:, : -2 * k * k], plain.vectors) and torch.equal(feats.images, plain.images)
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert PreprocessConfig.from_dict(PreprocessConfig(grid=grid).to_dict()).coarse_image == 0


def test_coarse_image_shows_where_a_block_sits():
    """A block's two diagonal squares light the coarse image's diagonal cells and leave the other two dark: where
    the mass sits, which the sorted column profile does not keep."""
    t = 16
    block = np.full((t, t), 0.01)
    block[:8, :8] = block[8:, 8:] = 1.0
    feats = preprocess_maps([block], PreprocessConfig(coarse_image=2))
    cells = feats.vectors[0, -8:-4].numpy()  # the map channel's 2 x 2 cells, row by row
    assert cells[0] == cells[3] == 1.0 and cells[1] < 0.05 and cells[2] < 0.05
    with pytest.raises(ValueError, match="coarse_image"):
        PreprocessConfig(grid=16, coarse_image=17)


def _segment_statistics_by_loops(x: np.ndarray, seg: list[int]) -> list[float]:
    """segment_statistics written out cell by cell, in float64, from its docstring."""
    t = len(seg)
    p = x / x.sum()
    boundary = {0} | {i for i in range(t) if i == t - 1 or seg[i + 1] != seg[i]}
    content = [j for j in range(t) if j not in boundary]
    pair = any(s != seg[0] for s in seg)
    if not pair or not content:
        return [float(pair)] + [-1.0] * 5
    total = sum(p[i, j] for i in range(t) for j in content)
    within = sum(p[i, j] for i in range(t) for j in content if seg[j] == seg[i]) / total
    chance = sum(sum(1 for j in content if seg[j] == seg[i]) / len(content) for i in range(t)) / t
    kept = []
    for s in sorted(set(seg)):
        rows = [i for i in range(t) if seg[i] == s]
        mass = sum(p[i, j] for i in rows for j in content)
        inside = sum(p[i, j] for i in rows for j in content if seg[j] == s)
        kept.append(inside / mass if mass > 1e-12 else 0.0)
    share = sum(1 for s in seg if s != seg[0]) / t
    return [1.0, within, chance, within - chance, min(kept), share]


@pytest.mark.parametrize("t, split", [(9, 5), (12, 3), (20, 10), (7, None), (5, 4)])
def test_segment_statistics_match_a_cell_by_cell_count(t, split):
    rng = np.random.default_rng(t)
    maps = rng.random((3, t, t)) ** 4
    maps[1, :, 2] = 0.0  # a row set may put nothing on some columns
    seg = [0] * t if split is None else [0] * split + [1] * (t - split)
    got = segment_statistics(torch.tensor(maps / maps.max(axis=(1, 2), keepdims=True), dtype=torch.float64),
                             torch.tensor([seg] * 3))
    want = [_segment_statistics_by_loops(m, seg) for m in maps]
    np.testing.assert_allclose(got.numpy(), np.array(want), rtol=1e-9, atol=1e-12)


def test_segment_statistics_tell_sentence_squares_from_one_stripe():
    seg = [0] * 6 + [1] * 6
    block = np.full((12, 12), 0.01)
    block[:6, :6] = block[6:, 6:] = 1.0
    stripe = np.full((12, 12), 0.01)
    stripe[:, 3] = 1.0  # every query on one token of sentence A: B's rows keep nothing inside B
    got = segment_statistics(torch.tensor(np.stack([block, stripe]), dtype=torch.float32), torch.tensor([seg, seg]))
    pair, within, chance, lift, worst, share = got.T.tolist()
    assert pair == [1.0, 1.0] and share == [0.5, 0.5]
    assert within[0] > 0.95 and worst[0] > 0.95 and lift[0] > 0.4
    assert worst[1] < 0.05 and abs(chance[0] - chance[1]) < 1e-6


def test_segment_ids_are_read_only_when_asked_and_must_fit_the_map():
    cfg = PreprocessConfig(segment_statistics=True)
    assert cfg.n_vector == PreprocessConfig().n_vector + 6
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    rng = np.random.default_rng(1)
    a, b = rng.random((10, 10)), rng.random((7, 7))
    ids = [[0] * 5 + [1] * 5, [0] * 7]
    with_ids = preprocess_maps([a, b], cfg, segments=ids).vectors
    none = preprocess_maps([a, b], cfg).vectors  # no ids: single sentences
    assert torch.equal(with_ids[1], none[1]) and not torch.equal(with_ids[0], none[0])
    assert none[0, -6:].tolist() == [0.0, -1.0, -1.0, -1.0, -1.0, -1.0]
    # zero padding is stripped from the map and its ids alike
    padded = np.zeros((14, 14))
    padded[:10, :10] = a
    again = preprocess_maps([padded], cfg, segments=[ids[0] + [0] * 4]).vectors
    torch.testing.assert_close(again[0], with_ids[0])
    # without segment statistics the ids are not read at all
    plain = PreprocessConfig()
    assert torch.equal(preprocess_maps([a], plain, segments=[ids[0]]).vectors, preprocess_maps([a], plain).vectors)
    with pytest.raises(MapError, match="10 tokens but 9 segment ids"):
        preprocess_maps([a], cfg, names=["m"], segments=[[0] * 9])
    with pytest.raises(MapError, match="one per map"):
        preprocess_maps([a, b], cfg, segments=[ids[0]])

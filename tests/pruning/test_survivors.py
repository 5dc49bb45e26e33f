"""Super-survivors, survival frequency and Fleiss' κ across seeds, from run folders and the published layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnpatterns.masking.files import MaskError
from attnpatterns.pruning.survivors import (
    HEATMAP_FILE,
    compute_survivors,
    find_mask_sets,
    fleiss_kappa,
    read_survivors as load_survivors,
)


def _kappa_by_hand(masks: np.ndarray) -> float:
    """Fleiss (1971) written out: subjects = entries, raters = seeds, categories = kept / pruned."""
    n = masks.shape[0]
    kept = masks.reshape(n, -1).sum(0)  # raters that kept each subject
    counts = np.stack([kept, n - kept], 1)  # (subjects, 2)
    p_j = counts.sum(0) / counts.sum()
    p_i = ((counts**2).sum(1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), (p_j**2).sum()
    return (p_bar - p_e) / (1 - p_e)


def _save(folder, head, mlp=None, manifest=None):
    folder.mkdir(parents=True)
    np.save(folder / "head_mask.npy", np.asarray(head, np.float32))
    if mlp is not None:
        np.save(folder / "mlp_mask.npy", np.asarray(mlp, np.float32))
    if manifest is not None:
        (folder / "manifest.json").write_text(json.dumps(manifest))


SEEDS = np.array(
    [
        [[1, 1, 0], [0, 1, 1]],
        [[1, 0, 0], [0, 1, 1]],
        [[1, 1, 1], [0, 1, 0]],
    ],
    np.float32,
)


def test_kappa_matches_the_formula_and_edge_cases():
    assert fleiss_kappa(SEEDS) == pytest.approx(_kappa_by_hand(SEEDS))
    assert fleiss_kappa(np.stack([SEEDS[0]] * 3)) == pytest.approx(1.0)  # identical masks agree perfectly
    assert fleiss_kappa(SEEDS[:1]) is None  # one seed: no agreement to measure
    assert fleiss_kappa(np.ones((3, 2, 3))) is None  # every head kept everywhere: undefined


def test_survivors_from_run_folders(tmp_path):
    mlps = np.array([[1, 0], [1, 1], [1, 0]], np.float32)
    for s, (head, mlp) in enumerate(zip(SEEDS, mlps)):
        _save(tmp_path / f"run{s}", head, mlp,
              {"run_type": "pruning", "seed": 10 + s, "task": {"name": "toy"}, "model": {"name": "tiny"}})
    _save(tmp_path / "run0-bad", SEEDS[0], mlps[0],
          {"run_type": "pruning", "method": "bad", "seed": 10, "task": {"name": "toy"}, "model": {"name": "tiny"}})
    assert sorted(find_mask_sets([tmp_path])) == ["toy", "toy-bad"]  # controls are kept apart
    groups = find_mask_sets([tmp_path / f"run{s}" for s in range(3)])
    assert list(groups) == ["toy"]
    result = compute_survivors(groups["toy"])
    summary = result.to_dict()
    assert summary["model"] == "tiny" and summary["task"] == "toy" and summary["seeds"] == [10, 11, 12]
    assert (summary["n_layers"], summary["n_heads"]) == (2, 3)
    assert summary["super_survivor_heads"] == [[0, 0], [1, 1]]
    assert summary["super_survivor_mlps"] == [0]
    np.testing.assert_allclose(summary["head_survival_frequency"], SEEDS.mean(0), atol=1e-6)
    assert summary["fleiss_kappa_heads"] == pytest.approx(_kappa_by_hand(SEEDS))
    result.save(tmp_path / "out")
    back = load_survivors(tmp_path / "out")
    assert back["super_survivor_heads"] == [[0, 0], [1, 1]]
    np.testing.assert_array_equal(back["super_survivors_head_mask"], [[1, 0, 0], [0, 1, 0]])
    assert (tmp_path / "out" / HEATMAP_FILE).read_bytes()[:4] == b"\x89PNG"


def test_published_layout(tmp_path):
    root = tmp_path / "masks" / "heads_mlps"
    rng = np.random.default_rng(0)
    for task in ("CoLA", "SST-2"):
        for seed in (42, 71, 86):
            _save(root / task / f"seed_{seed}", (rng.random((12, 12)) > 0.3), np.ones(12))
    _save(tmp_path / "masks" / "heads" / "CoLA" / "seed_42", np.ones((12, 12)))  # a second CoLA elsewhere
    groups = find_mask_sets([root])
    assert list(groups) == ["CoLA", "SST-2"]
    assert [m.seed for m in groups["CoLA"]] == [42, 71, 86]
    everything = find_mask_sets([tmp_path / "masks"])
    assert sorted(everything) == ["SST-2", "heads/CoLA", "heads_mlps/CoLA"]  # parents named only on a clash
    result = compute_survivors(groups["SST-2"], task="SST-2", model="bert-base-uncased")
    assert result.to_dict()["super_survivor_mlps"] == list(range(12))


def test_bad_inputs(tmp_path):
    with pytest.raises(MaskError, match="no head_mask.npy"):
        find_mask_sets([tmp_path])
    with pytest.raises(MaskError, match="does not exist"):
        find_mask_sets([tmp_path / "missing"])
    _save(tmp_path / "a" / "seed_1", np.ones((2, 3)))
    _save(tmp_path / "a" / "seed_2", np.ones((3, 3)))
    with pytest.raises(MaskError, match="different shapes"):
        compute_survivors(find_mask_sets([tmp_path / "a"])["a"])
    _save(tmp_path / "b" / "seed_1", np.full((2, 3), 0.5))
    with pytest.raises(MaskError, match="only 0"):
        find_mask_sets([tmp_path / "b"])
    _save(tmp_path / "c" / "seed_1", np.ones((2, 3)), np.ones(5))
    with pytest.raises(MaskError, match="2 layers"):
        find_mask_sets([tmp_path / "c"])


def test_super_survivors_are_the_product_of_the_seeds_masks():
    """As compute_super_masks.py of Prasanna et al.'s code: super_head *= head_mask over the seeds, then the ids of
    the ones (the product loop written here)."""
    from attnpatterns.pruning.survivors import SeedMasks

    rng = np.random.default_rng(5)
    seeds = [SeedMasks("toy", s, (rng.random((6, 12)) > 0.15).astype(np.float32),
                       (rng.random(6) > 0.2).astype(np.float32)) for s in range(5)]
    super_head, super_mlp = np.ones((6, 12)), np.ones(6)
    for m in seeds:
        super_head *= m.head_mask
        super_mlp *= m.mlp_mask
    result = compute_survivors(seeds).to_dict()
    assert result["super_survivor_heads"] == [[i // 12, i % 12] for i in np.flatnonzero(super_head.reshape(-1) == 1)]
    assert result["super_survivor_mlps"] == np.flatnonzero(super_mlp == 1).tolist()
    assert 0 < len(result["super_survivor_heads"]) < 72

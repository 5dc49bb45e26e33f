"""Sampling corpus maps from extraction runs (spread, determinism, no duplicates) and importing .npy folders."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from attnpatterns.annotation.corpus import read_map_index, read_maps
from attnpatterns.annotation.sampling import (
    CORPUS_LOG_FILE, RunSource, add_run_sample, import_npy_folder, sample_run_maps,
)
from attnpatterns.extraction import open_run


def _sources(tiny_runs):
    singles, pairs = tiny_runs
    return [RunSource(open_run(singles), "tiny", "s"), RunSource(open_run(pairs), "tiny", "p")]


def test_sample_spreads_over_heads_and_text_kinds(tiny_runs):
    sample = sample_run_maps(_sources(tiny_runs), per_kind=16, seed=3)
    raw = [m for m in sample.maps if m.kind == "raw"]
    assert len(raw) == 16 and len([m for m in sample.maps if m.kind == "normed"]) == 16
    assert Counter(m.text_kind for m in raw) == {"single": 8, "pair": 8}
    per_head = Counter((m.layer, m.head) for m in raw if m.text_kind == "single")
    assert len(per_head) == 8 and set(per_head.values()) == {1}  # 2 layers x 4 heads, one text each
    m = next(m for m in raw if m.text_kind == "pair")
    assert m.map_id == f"tiny-L{m.layer}H{m.head}-{m.text_id}-raw" and m.text_id.startswith("p")
    run = open_run(tiny_runs[1])
    np.testing.assert_array_equal(m.array, run.get_map(m.text_id[1:], m.layer, m.head, "raw"))
    again = sample_run_maps(_sources(tiny_runs), per_kind=16, seed=3)
    assert [m.map_id for m in again.maps] == [m.map_id for m in sample.maps]


def test_add_run_sample_never_duplicates_and_logs(tiny_runs, tmp_path):
    first = add_run_sample(tmp_path, _sources(tiny_runs), per_kind=10, seed=0, balance="heuristic")
    second = add_run_sample(tmp_path, _sources(tiny_runs), per_kind=10, seed=0, balance="heuristic")
    assert len(first) == 20 and len(second) == 20 and not set(first) & set(second)
    assert len(read_map_index(tmp_path)) == 40
    logs = [json.loads(line) for line in (tmp_path / CORPUS_LOG_FILE).read_text().splitlines()]
    assert len(logs) == 2 and logs[0]["balance"] == "heuristic"
    assert all(a["heuristic_type"] for a in logs[0]["added"])


def test_only_short_texts(tiny_runs):
    sample = sample_run_maps(_sources(tiny_runs), per_kind=8, max_tokens=10, kinds=["raw"])
    assert sample.maps and all(m.n_tokens <= 10 for m in sample.maps)
    assert {m.kind for m in sample.maps} == {"raw"}


def test_import_npy_folder(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    np.save(folder / "a.npy", np.eye(5, dtype=np.float32))
    np.save(folder / "b.npy", np.ones((4, 4), dtype=np.float32) / 4)
    (folder / "b.json").write_text(json.dumps({
        "tokens": ["[CLS]", "x", "[SEP]", "y"], "segment_ids": [0, 0, 0, 1], "layer": 2, "head": 5,
        "kind": "normed", "model": "bert-base-uncased", "text_id": "t9",
    }))
    ids = import_npy_folder(tmp_path / "corpus", folder)
    assert ids == ["a", "bert-base-uncased-L2H5-t9-normed"]
    maps = {m.map_id: m for m in read_maps(tmp_path / "corpus")}
    assert maps["a"].tokens == ["t0", "t1", "t2", "t3", "t4"] and maps["a"].layer == -1
    assert maps[ids[1]].text_kind == "pair" and maps[ids[1]].kind == "normed"
    with pytest.raises(ValueError, match="no .npy"):
        import_npy_folder(tmp_path / "corpus", tmp_path / "corpus")


def _block_pair_map(t: int = 12, split: int = 6) -> tuple[np.ndarray, list[int]]:
    seg = [0] * split + [1] * (t - split)
    same = np.equal.outer(seg, seg).astype(np.float64)
    return same / same.sum(axis=1, keepdims=True), seg


def test_candidate_scores_rank_the_rare_types():
    from attnpatterns.annotation.heuristics import candidate_score

    block, seg = _block_pair_map()
    uniform = np.full((12, 12), 1 / 12)
    assert candidate_score(block, seg, "block") > 0.5 > candidate_score(uniform, seg, "block")
    assert candidate_score(block, [0] * 12, "block") == 0.0  # no segments, no block
    stripe_and_diag = 0.5 * np.eye(12) + 0.5 * np.eye(12)[[0] * 12]
    stripe = np.eye(12)[[0] * 12]
    diag = np.eye(12)
    vd = candidate_score(stripe_and_diag, None, "vertical+diagonal")
    assert vd > 0.3 and candidate_score(stripe, None, "vertical+diagonal") < 0.05
    assert candidate_score(diag, None, "vertical+diagonal") < 0.05
    with pytest.raises(ValueError, match="no candidate score"):
        candidate_score(block, seg, "diagonal")


def test_favour_takes_top_candidates_first_and_logs_them(tiny_runs, tmp_path):
    from attnpatterns.annotation.heuristics import candidate_score

    sources = _sources(tiny_runs)
    sample = sample_run_maps(sources, per_kind=12, seed=0, kinds=["raw"], favour={("raw", "block"): 4})
    assert len(sample.maps) == 12
    favoured = [m for m in sample.maps if sample.selection[m.map_id].get("favoured") == "block"]
    assert len(favoured) == 4 and all(m.text_kind == "pair" for m in favoured)  # only the pairs run has blocks
    # they are the best-scoring pair maps, at most ceil(4 / 6) = 1 per head
    assert len({(m.layer, m.head) for m in favoured}) == 4
    run = open_run(tiny_runs[1])
    scores = sorted((candidate_score(run.get_map(e.example_id, layer, head, "raw"), e.segment_ids, "block")
                     for e in run.examples if 4 <= len(e.tokens) <= 64 for layer, head in run.heads), reverse=True)
    assert min(sample.selection[m.map_id]["candidate_score"] for m in favoured) >= scores[len(scores) // 2] - 1e-4
    new = add_run_sample(tmp_path, sources, per_kind=12, seed=0, kinds=["raw"], favour={("raw", "block"): 4})
    log = json.loads((tmp_path / CORPUS_LOG_FILE).read_text().splitlines()[0])
    assert log["favour"] == {"raw:block": 4} and len(new) == 12
    assert sum(1 for a in log["added"] if a.get("favoured") == "block") == 4
    with pytest.raises(ValueError, match="cannot favour"):
        sample_run_maps(sources, per_kind=4, favour={("raw", "diagonal"): 2})


def test_uncertain_takes_the_smallest_margins_of_the_classifier(tiny_runs, tmp_path):
    """Margin sampling against a brute force written here: every map scored on its own, sorted by p1 - p2."""
    import torch

    from attnpatterns.patterns import PatternClassifier
    from attnpatterns.constants import PATTERN_TYPES

    torch.manual_seed(0)
    clf = PatternClassifier.new("normed")  # untrained: spread-out probabilities are all this test needs
    sources = _sources(tiny_runs)
    sample = sample_run_maps(sources, per_kind=12, seed=0, kinds=["normed"],
                             uncertain={("normed", "diagonal"): 3}, classifiers={"normed": clf})
    assert len(sample.maps) == 12 and sample.classifiers["normed"]["kind"] == "normed"
    for i, src in enumerate(sources):
        run = open_run(tiny_runs[i])
        picked = [m for m in sample.maps if m.text_id.startswith(src.text_prefix)
                  and sample.selection[m.map_id].get("uncertain") == "diagonal"]
        brute = []
        for e in run.examples:
            if not 4 <= len(e.tokens) <= 64:
                continue
            for layer, head in run.heads:
                p = clf.predict_proba([run.get_map(e.example_id, layer, head, "normed")])[0]
                first, second = sorted(range(len(p)), key=lambda j: -p[j])[:2]
                if "diagonal" in (PATTERN_TYPES[first], PATTERN_TYPES[second]):
                    brute.append((p[first] - p[second], e.example_id, layer, head))
        brute.sort()
        chosen, per_head = [], Counter()
        for margin, ex_id, layer, head in brute:  # at most ceil(3 / 6) = 1 map per head
            if per_head[(layer, head)] == 0:
                per_head[(layer, head)] += 1
                chosen.append((src.map_id(ex_id, layer, head, "normed"), margin))
        chosen = chosen[:3]
        assert [m.map_id for m in picked] == [c[0] for c in chosen]
        for m, (_, margin) in zip(picked, chosen):
            assert sample.selection[m.map_id]["margin"] == pytest.approx(margin, abs=1e-4)
            assert "diagonal" in sample.selection[m.map_id]["top2"]
    new = add_run_sample(tmp_path, sources, per_kind=12, seed=0, kinds=["normed"],
                         uncertain={("normed", "any"): 2}, classifiers={"normed": clf})
    log = json.loads((tmp_path / CORPUS_LOG_FILE).read_text().splitlines()[0])
    assert log["uncertain"] == {"normed:any": 2} and len(new) == 12
    assert sum(1 for a in log["added"] if a.get("uncertain") == "any") == 4  # 2 per run
    assert log["uncertainty_classifiers"]["normed"]["kind"] == "normed"
    with pytest.raises(ValueError, match="cannot take uncertain"):
        sample_run_maps(sources, per_kind=4, uncertain={("normed", "stripes"): 2}, classifiers={"normed": clf})
    with pytest.raises(ValueError, match="trained on normed"):
        sample_run_maps(sources, per_kind=4, uncertain={("raw", "any"): 2}, classifiers={"raw": clf})


def test_maps_are_never_added_to_a_folder_that_is_not_a_corpus(tmp_path):
    """A folder of someone else's files, one of them named maps.safetensors, is left byte for byte as it was; a
    file given as the corpus is refused too."""
    from safetensors.numpy import save_file

    folder = tmp_path / "maps"
    folder.mkdir()
    np.save(folder / "a.npy", np.eye(5, dtype=np.float32))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    save_file({"encoder.weight": np.ones((3, 3), np.float32)}, str(theirs / "maps.safetensors"))
    before = (theirs / "maps.safetensors").read_bytes()
    with pytest.raises(ValueError, match="not an annotation corpus"):
        import_npy_folder(theirs, folder)
    assert (theirs / "maps.safetensors").read_bytes() == before and sorted(p.name for p in theirs.iterdir()) == [
        "maps.safetensors"]
    with pytest.raises(ValueError, match="is a file"):
        import_npy_folder(theirs / "maps.safetensors", folder)
    assert import_npy_folder(tmp_path / "new", folder) == ["a"]  # a new folder becomes a corpus

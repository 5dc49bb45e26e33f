"""AnnotationSession: saving at once, resume, skip, undo, second pass, suggestions and uncertain-first order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from attnpatterns.annotation.corpus import RETRACTED, effective_labels, read_labels, read_map_index, read_maps
from attnpatterns.annotation.session import AnnotationSession, heuristic_suggester
from attnpatterns.constants import PATTERN_TYPES


def test_label_is_saved_at_once_and_resume(corpus):
    s = AnnotationSession(corpus, "alice", kind="raw")
    assert s.progress().total == 6 and s.progress().done == 0
    first = s.current_id
    row = s.label("v")
    assert row.label == "vertical" and row.annotator == "alice" and row.pass_ == "first"
    assert "notebook" in row.method
    assert effective_labels(corpus) == {first: "vertical"}  # on disk before anything else happens
    s.label("diagonal")
    assert s.progress().done == 2 and s.progress().counts["diagonal"] == 1
    # a new session (kernel restart) resumes with the four maps left, in the same order
    t = AnnotationSession(corpus, "alice", kind="raw")
    assert t.queue == s.queue and len(t.queue) == 4 and first not in t.queue
    assert t.progress().done == 2


def test_skip_moves_to_end_without_writing(corpus):
    s = AnnotationSession(corpus, "alice", kind="raw")
    q = s.queue
    assert s.skip() == q[1]
    assert s.queue == q[1:] + q[:1]
    assert read_labels(corpus) == []
    assert s.progress().skipped == 1


def test_undo_appends_retraction_and_restores_previous(corpus):
    s = AnnotationSession(corpus, "alice", kind="raw")
    a = s.current_id
    s.label("block")
    b = s.current_id
    s.label("h")
    assert s.undo().label == RETRACTED
    assert s.current_id == b and effective_labels(corpus) == {a: "block"}
    assert s.undo().label == RETRACTED
    assert s.current_id == a and effective_labels(corpus) == {}
    assert s.undo() is None and not s.can_undo
    assert len(read_labels(corpus)) == 4  # append-only: nothing deleted

    # relabelling a map someone else labelled (once this session has seen it), then undoing, restores their label
    AnnotationSession(corpus, "bob", kind="raw").label("diagonal", map_id=a)
    with pytest.raises(ValueError, match="labelled 'diagonal' by bob meanwhile"):
        s.label("vertical", map_id=a)  # not seen yet: never written over
    s.refresh()
    s.label("vertical", map_id=a)
    restored = s.undo()
    assert (restored.label, restored.annotator, restored.pass_) == ("diagonal", "bob", "first")
    assert "restored by alice" in restored.note
    assert effective_labels(corpus)[a] == "diagonal"


def test_second_pass_is_independent_and_hides_nothing_it_should_not(corpus):
    first = AnnotationSession(corpus, "alice")
    while first.current_id:
        first.label(PATTERN_TYPES[len(first.queue) % 5])
    s = AnnotationSession(corpus, "bob", pass_="second", second_fraction=0.2, seed=1)
    assert len(s.queue) == 4  # ceil(0.2 * 6) per kind
    assert {m.split("-")[-1] for m in s.queue} == {"raw", "normed"}
    before = effective_labels(corpus)
    s.label("block")
    assert effective_labels(corpus) == before  # second pass never sets the effective label
    assert AnnotationSession(corpus, "alice", pass_="second", second_fraction=0.2, seed=1).queue == []
    carol = AnnotationSession(corpus, "carol", pass_="second", second_fraction=0.2, seed=1)
    assert len(carol.queue) == 3 and read_labels(corpus)[-1].map_id not in carol.queue  # one second look per map
    resumed = AnnotationSession(corpus, "bob", pass_="second", second_fraction=0.2, seed=1)
    assert len(resumed.queue) == 3 and resumed.progress().done == 1
    assert resumed.undo() is None  # undo history is per session
    s.undo()
    assert read_labels(corpus)[-1].label == RETRACTED and read_labels(corpus)[-1].pass_ == "second"
    assert len(AnnotationSession(corpus, "bob", pass_="second", second_fraction=0.2, seed=1).queue) == 4


def test_suggestions_and_uncertain_first(tmp_path):
    from attnpatterns.annotation.corpus import add_maps

    from .conftest import make_map

    add_maps(tmp_path, [make_map(text_id=f"s{i}", pattern=p, seed=i) for i, p in enumerate(PATTERN_TYPES)])
    confidence = {"vertical": 0.9, "diagonal": 0.3, "vertical+diagonal": 0.6, "block": 0.5, "heterogeneous": 0.95}
    by_id = {m.map_id: PATTERN_TYPES[i] for i, m in enumerate(read_maps(tmp_path))}

    def suggest(array, kind):
        for map_id, m in zip(by_id, read_maps(tmp_path)):
            if np.array_equal(m.array, array):
                c = confidence[by_id[map_id]]
                p = np.full(5, (1 - c) / 4)
                p[0] = c
                return p
        raise AssertionError

    s = AnnotationSession(tmp_path, "alice", suggest=suggest, order="uncertain")
    assert [by_id[m] for m in s.queue] == ["diagonal", "block", "vertical+diagonal", "vertical", "heterogeneous"]
    sug = s.suggestion()
    assert sug.label == "vertical" and sug.confidence == pytest.approx(0.3)
    row = s.label("d")
    assert "suggested vertical (0.30)" in row.note
    with pytest.raises(ValueError, match="needs a suggest"):
        AnnotationSession(tmp_path, "alice", order="uncertain")


def test_heuristic_suggester_uses_segments(tmp_path):
    from attnpatterns.annotation.corpus import add_maps

    from .conftest import make_map

    add_maps(tmp_path, [make_map(pattern="block", n=12, text_kind="pair", segment_ids=[0] * 6 + [1] * 6)])
    s = AnnotationSession(tmp_path, "alice", suggest=heuristic_suggester(), order="uncertain")
    assert s.suggestion().label == "block"
    assert "heuristic" in s.method


def test_two_sessions_concurrently(corpus):
    """Two sessions working through the same queue at once: every map gets exactly one label, none written over
    one its session had not seen (a refused click refreshes and goes on), and no row is lost."""
    sessions = [AnnotationSession(corpus, name) for name in ("alice", "bob")]
    written = {"alice": 0, "bob": 0}

    def work(s):
        while s.queue:
            try:
                s.label(PATTERN_TYPES[len(s.queue) % 5], map_id=s.queue[0])
                written[s.annotator] += 1
            except ValueError:
                s.refresh()

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = read_labels(corpus)
    assert len(rows) == written["alice"] + written["bob"] == len(read_map_index(corpus))
    assert len({r.map_id for r in rows}) == len(rows) and all(r.label in PATTERN_TYPES for r in rows)


def test_undo_never_erases_a_label_written_after_it(corpus):
    alice, bob = AnnotationSession(corpus, "alice"), AnnotationSession(corpus, "bob")
    y = alice.current_id
    alice.label("block", map_id=y)
    bob.refresh()
    bob.label("heterogeneous", map_id=y)  # bob has seen alice's label and changes it on purpose
    with pytest.raises(ValueError, match="labelled 'heterogeneous' by bob after your label"):
        alice.undo()
    assert effective_labels(corpus)[y] == "heterogeneous" and alice.can_undo
    assert len(read_labels(corpus)) == 2


def test_bad_inputs(corpus):
    with pytest.raises(ValueError, match="annotator"):
        AnnotationSession(corpus, " ")
    s = AnnotationSession(corpus, "alice")
    with pytest.raises(ValueError, match="valid labels"):
        s.label("zigzag")
    with pytest.raises(KeyError):
        s.label("v", map_id="nope")

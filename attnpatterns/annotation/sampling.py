"""Choosing maps for the corpus: a spread sample from extraction runs, or a folder of ``.npy`` maps.

:func:`sample_run_maps` picks maps from one or more extraction runs (objects with the
:func:`attnpatterns.extraction.open_run` interface), per kind, so that they spread evenly over the runs (give one
run of single sentences and one of sentence pairs to get both), over every (layer, head), and over the texts:
heads are visited round-robin in a shuffled order and each visit draws a text not yet used for that head.

With ``balance="heuristic"`` a pool several times larger is drawn the same way and the final pick takes the
pool's maps round-robin by their heuristic type (:mod:`~attnpatterns.annotation.heuristics`), so rare-looking
patterns (blocks) are not drowned by common ones (verticals). This only changes which maps are shown; it never
labels anything, and the heuristic type of every picked map is recorded in ``corpus_log.jsonl``.

With ``favour={("raw", "block"): 40}`` the first 40 raw maps of each run are the ones with the highest
:func:`~attnpatterns.annotation.heuristics.candidate_score` for ``block`` (at most a sixth of them from one head),
and the rest of the quota is spread as usual. This is for types a model rarely shows: annotators still label what
they see (the score is not shown to them), and each favoured map's score is recorded in ``corpus_log.jsonl``.

With ``uncertain={("normed", "heterogeneous"): 40}`` the first 40 normed maps of each run (after any favoured ones)
are those a pattern classifier is least sure of among the maps whose two most probable types include
``heterogeneous`` (``"any"``: all maps): margin sampling, the smallest gap between the two highest class
probabilities first (Settles, "Active Learning Literature Survey", 2009, §3.1), again at most a sixth from one head.
The classifier is the shipped default of the kind unless one is given. This chooses maps where more labels should
help the classifier most; as with ``favour``, annotators never see the classifier's output, and each map's margin and
two most probable types are recorded in ``corpus_log.jsonl``.

:func:`import_npy_folder` brings in maps saved one per ``.npy`` file, with an optional ``<name>.json`` beside
each giving tokens, segment_ids, model, text_id, layer, head and kind.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from attnpatterns.annotation.corpus import (
    CorpusMap,
    add_maps,
    make_map_id,
    model_short_name,
    read_map_index,
    slug,
)
from attnpatterns.annotation.heuristics import CANDIDATE_TYPES, candidate_score, heuristic_label
from attnpatterns.constants import HEAD_KINDS, MAP_KINDS, PATTERN_TYPES

CORPUS_LOG_FILE = "corpus_log.jsonl"
BALANCES: tuple[str, ...] = ("none", "heuristic")
POOL_FACTOR = 4  # pool size / quota for balance="heuristic"
ANY_TYPE = "any"  # uncertain={(kind, "any"): n}: margin sampling over every map, whatever its top two types


@dataclass
class RunSource:
    """One extraction run to sample from, with how its maps are named in the corpus."""

    run: object  # attnpatterns.extraction.MapRun or anything with the same attributes
    model_tag: str | None = None  # id prefix and ``model`` field; default: the run's model name, shortened
    text_prefix: str = ""  # put before example ids, so that runs over different inputs cannot collide

    @property
    def model(self) -> str:
        return self.model_tag or self.run.model_name

    @property
    def tag(self) -> str:
        return self.model_tag or model_short_name(self.run.model_name)

    def text_id(self, example_id: str) -> str:
        return f"{self.text_prefix}{example_id}"

    def map_id(self, example_id: str, layer: int, head: int, kind: str) -> str:
        return make_map_id(self.tag, layer, head, self.text_id(example_id), kind)


@dataclass
class Sample:
    maps: list[CorpusMap]
    selection: dict[str, dict] = field(default_factory=dict)  # map_id -> how it was picked (run, heuristic type)
    classifiers: dict[str, dict] = field(default_factory=dict)  # kind -> the classifier behind ``uncertain`` picks


def _spread(heads: list, examples: list, n: int, rng: random.Random, taken: set) -> list[tuple]:
    """``n`` (example, layer, head) triples: heads round-robin (shuffled per round), a fresh random text each visit."""
    if not heads or not examples or n <= 0:
        return []
    unused = {h: rng.sample(examples, len(examples)) for h in heads}  # per head, texts in random order
    out: list[tuple] = []
    while len(out) < n and any(unused.values()):
        order = rng.sample(heads, len(heads))
        for head in order:
            stack = unused[head]
            while stack:
                ex = stack.pop()
                if (ex.example_id, *head) not in taken:
                    out.append((ex, *head))
                    break
            if len(out) >= n:
                break
    return out


def sample_run_maps(
    sources: Sequence[RunSource],
    per_kind: int,
    seed: int = 0,
    kinds: Sequence[str] | None = None,
    max_tokens: int = 64,
    min_tokens: int = 4,
    balance: str = "none",
    exclude: set[str] | frozenset = frozenset(),
    favour: Mapping[tuple[str, str], int] | None = None,
    uncertain: Mapping[tuple[str, str], int] | None = None,
    classifiers: Mapping[str, object] | None = None,
) -> Sample:
    """Pick ``per_kind`` maps of each kind from ``sources`` (split evenly between them) as corpus maps.

    Texts longer than ``max_tokens`` or shorter than ``min_tokens`` are left out (long maps are hard to judge on
    a sheet); map ids in ``exclude`` (already in the corpus) are never picked. ``favour`` maps (kind, type) to a
    number of top candidates per run taken first (see the module docstring); they count towards the quota.
    ``uncertain`` maps (kind, type or ``"any"``) to a number of maps per run taken next, those ``classifiers[kind]``
    (a :class:`~attnpatterns.patterns.PatternClassifier`; default: the shipped checkpoint of the kind) is least sure
    of (margin sampling, see the module docstring); they count towards the quota too.
    """
    if balance not in BALANCES:
        raise ValueError(f"balance {balance!r} is not one of {', '.join(BALANCES)}")
    favour = dict(favour or {})
    for (f_kind, f_type), n in favour.items():
        if f_kind not in MAP_KINDS or f_type not in CANDIDATE_TYPES or n < 0:
            raise ValueError(f"cannot favour {f_kind}:{f_type}={n}; use KIND:TYPE=N with KIND in "
                             f"{', '.join(MAP_KINDS)}, TYPE in {', '.join(CANDIDATE_TYPES)} and N >= 0")
    uncertain = dict(uncertain or {})
    for (u_kind, u_type), n in uncertain.items():
        if u_kind not in MAP_KINDS or u_type not in (*PATTERN_TYPES, ANY_TYPE) or n < 0:
            raise ValueError(f"cannot take uncertain maps {u_kind}:{u_type}={n}; use KIND:TYPE=N with KIND in "
                             f"{', '.join(MAP_KINDS)}, TYPE in {', '.join(PATTERN_TYPES)} or {ANY_TYPE}, and N >= 0")
    classifiers = dict(classifiers or {})
    for kind, clf in classifiers.items():
        if getattr(clf, "kind", kind) != kind:
            raise ValueError(f"the classifier given for {kind} maps was trained on {clf.kind} maps")
    if not sources:
        raise ValueError("give at least one extraction run to sample from")
    kinds = tuple(kinds) if kinds else HEAD_KINDS
    per_layer = [k for k in kinds if k not in HEAD_KINDS]
    if per_layer:
        raise ValueError(f"the annotation corpus holds per-head maps ({', '.join(HEAD_KINDS)}); "
                         f"{', '.join(per_layer)} maps are one per layer and are not sampled")
    sample = Sample(maps=[])
    for k_index, kind in enumerate(kinds):
        usable = [s for s in sources if kind in s.run.kinds]
        if not usable:
            continue
        quotas = [per_kind // len(usable) + (i < per_kind % len(usable)) for i in range(len(usable))]
        for s_index, (src, quota) in enumerate(zip(usable, quotas)):
            rng = random.Random(f"{seed}/{kind}/{s_index}")
            examples = [e for e in src.run.examples if min_tokens <= len(e.tokens) <= max_tokens]
            taken = {
                (e.example_id, layer, head)
                for e in examples for layer, head in src.run.heads
                if src.map_id(e.example_id, layer, head, kind) in exclude
            } if exclude else set()
            favoured = []
            for (f_kind, f_type), n in sorted(favour.items()):
                if f_kind == kind and n > 0:
                    top = _top_candidates(src.run, examples, kind, f_type, min(n, quota - len(favoured)), taken)
                    taken |= {(ex.example_id, layer, head) for ex, layer, head, _, _ in top}
                    favoured += top
            unsure = []
            for (u_kind, u_type), n in sorted(uncertain.items()):
                n = min(n, quota - len(favoured) - len(unsure))
                if u_kind == kind and n > 0:
                    from attnpatterns.patterns.checkpoint import load_default_checkpoint  # torch: import late
                    from attnpatterns.patterns.classify import checkpoint_info

                    if kind not in classifiers:
                        classifiers[kind] = load_default_checkpoint(kind)
                    top = _least_certain(src.run, examples, kind, u_type, n, taken, classifiers[kind])
                    sample.classifiers[kind] = checkpoint_info(classifiers[kind])
                    taken |= {(ex.example_id, layer, head) for ex, layer, head, *_ in top}
                    unsure += top
            quota_left = quota - len(favoured) - len(unsure)
            pool_size = quota_left * (POOL_FACTOR if balance == "heuristic" else 1)
            triples = _spread(list(src.run.heads), examples, pool_size, rng, taken)
            run_root = str(getattr(src.run, "root", ""))
            picked = []
            for ex, layer, head, f_type, score in favoured:
                m = _corpus_map(src, ex, layer, head, kind)
                sample.maps.append(m)
                sample.selection[m.map_id] = {"run": run_root, "heuristic_type": None,
                                              "favoured": f_type, "candidate_score": round(score, 4)}
            for ex, layer, head, u_type, margin, top2 in unsure:
                m = _corpus_map(src, ex, layer, head, kind)
                sample.maps.append(m)
                sample.selection[m.map_id] = {"run": run_root, "heuristic_type": None, "uncertain": u_type,
                                              "margin": round(margin, 4), "top2": list(top2)}
            for ex, layer, head in triples:
                m = _corpus_map(src, ex, layer, head, kind)
                picked.append((m, heuristic_label(m.array, m.segment_ids) if balance == "heuristic" else None))
            if balance == "heuristic":
                picked = _round_robin_by_type(picked, quota_left)
            for m, htype in picked:
                sample.maps.append(m)
                sample.selection[m.map_id] = {"run": run_root, "heuristic_type": htype}
    return sample


def _corpus_map(src: RunSource, ex, layer: int, head: int, kind: str) -> CorpusMap:
    return CorpusMap(
        map_id=src.map_id(ex.example_id, layer, head, kind), model=src.model,
        text_id=src.text_id(ex.example_id), text_kind="pair" if ex.text_b is not None else "single",
        layer=layer, head=head, kind=kind, tokens=ex.tokens, segment_ids=ex.segment_ids,
        array=src.run.get_map(ex.example_id, layer, head, kind),
    )


def _top_candidates(run, examples: list, kind: str, pattern: str, n: int, taken: set) -> list[tuple]:
    """The ``n`` maps of ``run`` with the highest candidate score for ``pattern``, at most ``ceil(n / 6)`` per head.

    Returns (example, layer, head, pattern, score) tuples; blocks are only looked for in pairs. Ties and the
    order of equal scores follow the run's example order, so the pick is deterministic.
    """
    if n <= 0:
        return []
    scored = []
    for ex in examples:
        if pattern == "block" and ex.text_b is None:
            continue
        for layer, head in run.heads:
            if (ex.example_id, layer, head) in taken:
                continue
            score = candidate_score(run.get_map(ex.example_id, layer, head, kind), ex.segment_ids, pattern)
            if score > 0:
                scored.append((score, ex, layer, head))
    scored.sort(key=lambda s: -s[0])  # stable: equal scores keep the run's order
    return _capped_per_head([((layer, head), (ex, layer, head, pattern, score)) for score, ex, layer, head in scored],
                            n)


def _least_certain(run, examples: list, kind: str, pattern: str, n: int, taken: set, classifier,
                   batch_size: int = 512) -> list[tuple]:
    """The ``n`` maps of ``run`` with the smallest margin ``p(1st) - p(2nd)`` under ``classifier`` among those whose
    two most probable types include ``pattern`` (``"any"``: every map), at most ``ceil(n / 6)`` per head.

    Returns (example, layer, head, pattern, margin, (1st type, 2nd type)) tuples. Equal margins keep the run's
    order (examples, then heads), so the pick is deterministic.
    """
    if n <= 0:
        return []
    keys = [(ex, layer, head) for ex in examples for layer, head in run.heads
            if (ex.example_id, layer, head) not in taken]
    labels = classifier.label_names
    scored = []
    for start in range(0, len(keys), batch_size):
        part = keys[start : start + batch_size]
        probs = classifier.predict_proba([run.get_map(ex.example_id, layer, head, kind) for ex, layer, head in part],
                                         kind=kind, segments=[ex.segment_ids for ex, _, _ in part])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :2]
        for (ex, layer, head), p, (first, second) in zip(part, probs, order):
            top2 = (labels[first], labels[second])
            if pattern == ANY_TYPE or pattern in top2:
                scored.append((float(p[first] - p[second]), ex, layer, head, top2))
    scored.sort(key=lambda s: s[0])  # stable: equal margins keep the run's order
    return _capped_per_head([((layer, head), (ex, layer, head, pattern, margin, top2))
                             for margin, ex, layer, head, top2 in scored], n)


def _capped_per_head(ranked: list[tuple[tuple[int, int], tuple]], n: int) -> list[tuple]:
    """The first ``n`` items of ``ranked`` ((layer, head), item) pairs, best first, taking at most ``ceil(n / 6)``
    from one head, so that favoured or uncertain picks spread over several heads."""
    cap = max(1, -(-n // 6))
    per_head: dict[tuple[int, int], int] = defaultdict(int)
    out = []
    for head, item in ranked:
        if len(out) == n:
            break
        if per_head[head] < cap:
            per_head[head] += 1
            out.append(item)
    return out


def _round_robin_by_type(picked: list[tuple[CorpusMap, str]], quota: int) -> list[tuple[CorpusMap, str]]:
    """Take ``quota`` maps cycling over heuristic types (each type in pool order) until the quota is met."""
    by_type: dict[str, list] = defaultdict(list)
    for item in picked:
        by_type[item[1]].append(item)
    out: list = []
    while len(out) < quota and any(by_type.values()):
        for t in PATTERN_TYPES:
            if by_type[t] and len(out) < quota:
                out.append(by_type[t].pop(0))
    return out


def add_run_sample(
    root: str | Path,
    sources: Sequence[RunSource],
    per_kind: int,
    seed: int = 0,
    command: str = "",
    **kwargs,
) -> list[str]:
    """Sample maps from runs (:func:`sample_run_maps`), add the new ones to the corpus, log how; return new ids."""
    root = Path(root)
    exclude = {m["map_id"] for m in read_map_index(root)}
    sample = sample_run_maps(sources, per_kind, seed=seed, exclude=exclude, **kwargs)
    kwargs.pop("classifiers", None)  # logged as what they are (path, weights hash), below
    new = add_maps(root, sample.maps)
    log = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "runs": [
            {"path": str(getattr(s.run, "root", "")), "model": s.model, "model_tag": s.tag,
             "text_prefix": s.text_prefix, "run_manifest_model": s.run.manifest.get("model")}
            for s in sources
        ],
        "per_kind": per_kind,
        "seed": seed,
        **{k: _loggable(v) for k, v in kwargs.items()},
        **({"uncertainty_classifiers": sample.classifiers} if sample.classifiers else {}),
        "added": [{"map_id": m, **sample.selection[m]} for m in new],
    }
    if new:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / CORPUS_LOG_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(log, ensure_ascii=False) + "\n")
    return new


def _loggable(value):
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, Mapping):  # favour: {(kind, type): n} -> {"kind:type": n}
        return {":".join(k) if isinstance(k, tuple) else k: v for k, v in value.items()}
    return value


def import_npy_folder(root: str | Path, folder: str | Path, model: str | None = None, kind: str = "raw") -> list[str]:
    """Add every ``<name>.npy`` map of ``folder`` to the corpus; return the ids that were new.

    An optional ``<name>.json`` beside a map overrides the defaults: tokens (default ``t0``, ``t1``, ...),
    segment_ids (all 0), model (``model`` or the folder name), text_id (``name``), text_kind, layer and head
    (-1 = unknown) and kind (``kind``). Maps with a known layer and head get the usual id, others ``<name>``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file, not a folder"
        raise ValueError(f"{folder} {what}; pass a folder of square <name>.npy maps (optional <name>.json beside)")
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise ValueError(f"{folder} holds no .npy maps; pass a folder of square <name>.npy maps")
    maps = []
    for f in files:
        array = np.load(f)
        meta_path = f.with_suffix(".json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        t = array.shape[0]
        layer, head = int(meta.get("layer", -1)), int(meta.get("head", -1))
        m_kind = meta.get("kind", kind)
        m_model = meta.get("model", model or folder.name)
        text_id = str(meta.get("text_id", f.stem))
        map_id = (make_map_id(model_short_name(m_model), layer, head, text_id, m_kind)
                  if layer >= 0 and head >= 0 else slug(f.stem))
        segment_ids = meta.get("segment_ids", [0] * t)
        maps.append(CorpusMap(
            map_id=map_id, model=m_model, text_id=text_id,
            text_kind=meta.get("text_kind", "pair" if len(set(segment_ids)) > 1 else "single"),
            layer=layer, head=head, kind=m_kind, tokens=meta.get("tokens", [f"t{i}" for i in range(t)]),
            segment_ids=segment_ids, array=array,
        ))
    return add_maps(root, maps)

"""Label every map of an extraction run (or of a folder of ``.npy`` maps) and summarise the labels per head.

:func:`classify_run` streams the maps of a :class:`~attnpatterns.extraction.MapRun` in batches (maps of one
example share a size, so a batch is featurised in a few tensor operations on the classifier's device) and returns
a :class:`ClassificationTable`, which owns its files::

    classifications.csv   example_id, layer, head, kind, label, p_vertical, p_diagonal, p_vertical+diagonal,
                          p_block, p_heterogeneous          (one row per map; head = the ORIGINAL head id)
    head_summary.csv      layer, head, kind, n_maps, majority_label, frac_<type> for the five types
    manifest.json         run_manifest (the extraction run's manifest), checkpoint (per kind: path, SHA-256 of
                          its weights, training summary), source, counts

The majority label of a head is its most frequent label over examples; ties go to the type listed first in
:data:`~attnpatterns.constants.PATTERN_TYPES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from attnpatterns.constants import (
    CLASSIFICATIONS_FILE,
    CLASSIFIER_KIND,
    HEAD_SUMMARY_FILE,
    MANIFEST_FILE,
    MAP_KINDS,
    PATTERN_TYPES,
)
from attnpatterns.patterns.classifier import PatternClassifier
from attnpatterns.runfolder import write_json

RUN_TYPE = "classification"

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{t}" for t in PATTERN_TYPES)
FRAC_COLUMNS: tuple[str, ...] = tuple(f"frac_{t}" for t in PATTERN_TYPES)
CLASSIFICATION_COLUMNS: tuple[str, ...] = ("example_id", "layer", "head", "kind", "label", *PROB_COLUMNS)
HEAD_SUMMARY_COLUMNS: tuple[str, ...] = ("layer", "head", "kind", "n_maps", "majority_label", *FRAC_COLUMNS)

#: Default pattern for reading layer and head out of ``.npy`` file names such as ``ex12_L3_H7.npy``.
DEFAULT_NAME_PATTERN = r"^(?P<example>.+?)[_\-.]?l(?:ayer)?(?P<layer>\d+)[_\-.]?h(?:ead)?(?P<head>\d+)$"


def checkpoint_info(classifier: PatternClassifier) -> dict:
    """What a classification manifest records about the classifier used."""
    meta = classifier.metadata
    training = meta.get("training", {})
    return {
        "path": meta.get("path"),
        "kind": classifier.kind,
        "weights_sha256": meta.get("weights_sha256"),
        "created": meta.get("created"),
        "data_sha256": training.get("data", {}).get("data_sha256"),
        "cv_macro_f1": training.get("cv_macro_f1"),
    }


def classification_fingerprint(source: str | None, classifiers: dict, kinds=None) -> str:
    """What decides a classification's rows: the maps (``source``: the extraction run's fingerprint, or a digest
    of a folder of maps), the weights of each kind's classifier, and the kinds classified."""
    from attnpatterns.runfolder import fingerprint

    return fingerprint({
        "run": source,
        "checkpoints": {k: checkpoint_info(c).get("weights_sha256") for k, c in sorted(classifiers.items())},
        "kinds": None if kinds is None else sorted(kinds),
    })


def classifiers_for_kinds(kinds: Iterable[str], given: Mapping[str, PatternClassifier] | None = None,
                          device="cpu") -> dict[str, PatternClassifier]:
    """The classifier that labels each kind: the one ``given`` for that kind, else the shipped default of its family.

    A layer-level kind is labelled by the classifier of its family (:data:`~attnpatterns.constants.CLASSIFIER_KIND`:
    row-stochastic kinds by the raw one, norm maps by the normed one) unless a checkpoint of its own kind is given;
    each shipped default is loaded once.
    """
    from attnpatterns.patterns import load_classifier

    given = dict(given or {})
    kinds = list(kinds)
    defaults = {family: given.get(family) or load_classifier(None, kind=family, device=device)
                for family in {CLASSIFIER_KIND[k] for k in kinds if k not in given}}
    return {k: given.get(k) or defaults[CLASSIFIER_KIND[k]] for k in kinds}


def head_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, head, kind): number of maps, majority label and the fraction of each type."""
    if rows.empty:
        return pd.DataFrame(columns=list(HEAD_SUMMARY_COLUMNS))
    counts = (
        rows.groupby(["layer", "head", "kind", "label"]).size().unstack("label", fill_value=0)
        .reindex(columns=list(PATTERN_TYPES), fill_value=0)
    )
    n = counts.sum(axis=1)
    out = pd.DataFrame(index=counts.index)
    out["n_maps"] = n
    out["majority_label"] = [PATTERN_TYPES[int(np.argmax(row))] for row in counts.to_numpy()]
    for t, col in zip(PATTERN_TYPES, FRAC_COLUMNS):
        out[col] = counts[t] / n
    return out.reset_index()[list(HEAD_SUMMARY_COLUMNS)]


@dataclass
class ClassificationTable:
    """One row per classified map (:data:`CLASSIFICATION_COLUMNS`) plus where the maps and classifiers came from."""

    rows: pd.DataFrame
    run_manifest: dict = field(default_factory=dict)
    checkpoints: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        missing = [c for c in CLASSIFICATION_COLUMNS if c not in self.rows.columns]
        if missing:
            raise ValueError(f"classification rows lack columns {missing}")
        self.rows = self.rows[list(CLASSIFICATION_COLUMNS)].reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.rows)

    def head_summary(self) -> pd.DataFrame:
        return head_summary(self.rows)

    def manifest(self, extra: dict | None = None) -> dict:
        counts = self.rows.groupby("kind")["label"].value_counts().unstack(fill_value=0)
        return {
            "run_type": RUN_TYPE,
            "source": self.source,
            "run_manifest": self.run_manifest,
            "checkpoint": self.checkpoints,
            "n_maps": len(self.rows),
            "label_counts": {k: {t: int(counts.loc[k].get(t, 0)) for t in PATTERN_TYPES} for k in counts.index},
            **(extra or {}),
        }

    def save(self, folder: str | Path, manifest_extra: dict | None = None) -> dict[str, Path]:
        """Write the three files into ``folder`` (created). ``manifest_extra`` adds keys (command, versions...)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "classifications": folder / CLASSIFICATIONS_FILE,
            "head_summary": folder / HEAD_SUMMARY_FILE,
            "manifest": folder / MANIFEST_FILE,
        }
        self.rows.to_csv(paths["classifications"], index=False, float_format="%.6g")
        self.head_summary().to_csv(paths["head_summary"], index=False, float_format="%.6g")
        write_json(paths["manifest"], {**self.manifest(manifest_extra), "status": "complete"})  # last: complete
        return paths

    @classmethod
    def load(cls, folder: str | Path) -> ClassificationTable:
        folder = Path(folder)
        path = folder / CLASSIFICATIONS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {CLASSIFICATIONS_FILE}; write it with `attnpatterns classify`")
        # ids as written: "007", "1e3", "NA" or "null" stay those strings (pandas would read the last two as NaN)
        rows = pd.read_csv(path, dtype={"example_id": str}, keep_default_na=False, na_values=[""])
        manifest_path = folder / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
        return cls(rows, manifest.get("run_manifest", {}), manifest.get("checkpoint", {}), manifest.get("source", ""))


def _as_classifiers(classifiers) -> dict[str, PatternClassifier]:
    if isinstance(classifiers, PatternClassifier):
        return {classifiers.kind: classifiers}
    out = dict(classifiers)
    for kind, clf in out.items():
        if kind not in MAP_KINDS:
            raise ValueError(f"unknown map kind {kind!r}; expected one of {', '.join(MAP_KINDS)}")
        # a layer-level kind may be labelled by the classifier of its family (CLASSIFIER_KIND), e.g. rollout by raw
        clf.check_kind(kind if clf.kind == kind else CLASSIFIER_KIND[kind], where=f"the {kind} maps of the run")
    return out


def _rows(ids, layers, heads, kind: str, probs: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"example_id": ids, "layer": layers, "head": heads, "kind": kind})
    frame["label"] = [PATTERN_TYPES[i] for i in probs.argmax(axis=1)]
    for i, col in enumerate(PROB_COLUMNS):
        frame[col] = probs[:, i]
    return frame


def check_complete(run) -> None:
    """Refuse an unfinished extraction run (killed midway): its table would hold only some examples and, recorded
    under the run's fingerprint, pass for the finished run's."""
    if not run.is_complete:
        expected = run.manifest.get("n_examples", "?")
        raise ValueError(
            f"{run.root} is an unfinished extraction run ({len(run.examples)} of {expected} examples); finish it by "
            "running the same `attnpatterns extract` command again, then classify it."
        )


def classify_run(
    run,
    classifiers: PatternClassifier | Mapping[str, PatternClassifier],
    batch_size: int = 512,
    kinds: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ClassificationTable:
    """Classify every map of ``run`` (a :class:`~attnpatterns.extraction.MapRun`).

    ``classifiers`` maps each kind to its classifier (or is one classifier, which then decides the kind); a
    layer-level kind may be given the classifier of its family in :data:`~attnpatterns.constants.CLASSIFIER_KIND`
    (its rows keep their own kind and head -1; the manifest records which checkpoint labelled them). ``kinds``
    defaults to the run's kinds that have a classifier; asking for a kind that the run lacks, or that has no
    classifier, is an error. ``progress`` is called with the number of maps done since its last call.
    """
    check_complete(run)
    by_kind = _as_classifiers(classifiers)
    wanted = tuple(kinds) if kinds is not None else tuple(k for k in run.kinds if k in by_kind)
    if not wanted:
        raise ValueError(
            f"no classifier for any kind of this run (run has {', '.join(run.kinds)}; "
            f"classifiers for {', '.join(by_kind) or 'none'})"
        )
    for kind in wanted:
        if kind not in run.kinds:
            raise ValueError(f"the run has no {kind} maps (it has {', '.join(run.kinds)})")
        if kind not in by_kind:
            raise ValueError(f"no classifier given for the run's {kind} maps")
    frames = []
    for kind in wanted:
        classifier = by_kind[kind]
        buffer: list = []

        def flush() -> None:
            if not buffer:
                return
            probs = classifier.predict_proba(
                [r.array for r in buffer],
                names=[f"{r.example_id} L{r.layer} H{r.head} {kind}" for r in buffer],
                batch_size=batch_size,
                segments=[r.segment_ids for r in buffer],
            )
            frames.append(
                _rows([r.example_id for r in buffer], [r.layer for r in buffer], [r.head for r in buffer], kind, probs)
            )
            if progress is not None:
                progress(len(buffer))
            buffer.clear()

        for record in run.iter_maps(kinds=[kind]):
            buffer.append(record)
            if len(buffer) >= batch_size:
                flush()
        flush()
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(CLASSIFICATION_COLUMNS))
    return ClassificationTable(
        rows,
        run_manifest=dict(getattr(run, "manifest", {})),
        checkpoints={k: checkpoint_info(by_kind[k]) for k in wanted},
        source=str(getattr(run, "root", "")),
    )


def check_name_pattern(pattern: str) -> str:
    """``pattern`` if it compiles and has the named groups ``example``, ``layer`` and ``head``; ValueError else."""
    try:
        groups = set(re.compile(pattern, flags=re.IGNORECASE).groupindex)
    except re.error as exc:
        raise ValueError(f"--name-pattern {pattern!r} is not a valid regular expression ({exc})") from exc
    missing = [g for g in ("example", "layer", "head") if g not in groups]
    if missing:
        raise ValueError(
            f"--name-pattern {pattern!r} lacks the named group(s) {', '.join(missing)}; write them as (?P<layer>\\d+) "
            f"etc., like the default {DEFAULT_NAME_PATTERN!r}"
        )
    return pattern


def parse_map_name(name: str, pattern: str = DEFAULT_NAME_PATTERN) -> tuple[str, int, int]:
    """(example_id, layer, head) from a file stem; layer and head are -1 when the pattern does not match."""
    match = re.match(pattern, name, flags=re.IGNORECASE)
    if match is None:
        return name, -1, -1
    return match.group("example"), int(match.group("layer")), int(match.group("head"))


def classify_maps(
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    classifier: PatternClassifier,
    batch_size: int = 512,
    name_pattern: str = DEFAULT_NAME_PATTERN,
    source: str = "",
) -> ClassificationTable:
    """Classify loose maps (for example a folder of ``.npy`` files) of the classifier's kind.

    Layer and head are read from each name with ``name_pattern`` (named groups ``example``, ``layer``, ``head``;
    the default reads ``ex12_L3_H7``); names that do not match keep the whole name as example id and -1 for both.
    Loose maps carry no segment ids: a classifier that reads them (:attr:`PatternClassifier.reads_segments`) counts
    every map as a single sentence, and a warning says so.
    """
    if len(names) != len(arrays):
        raise ValueError("names and arrays must have the same length")
    classifier.warn_without_segments("loose maps", " Classify the extraction run folder instead to use them.")
    check_name_pattern(name_pattern)
    parsed = [parse_map_name(n, name_pattern) for n in names]
    frames = []
    for start in range(0, len(arrays), batch_size):
        part = slice(start, start + batch_size)
        probs = classifier.predict_proba(arrays[part], names=names[part], batch_size=batch_size)
        ex, layers, heads = zip(*parsed[part])
        frames.append(_rows(list(ex), list(layers), list(heads), classifier.kind, probs))
    rows = pd.concat(frames, ignore_index=True)
    return ClassificationTable(rows, {}, {classifier.kind: checkpoint_info(classifier)}, source)

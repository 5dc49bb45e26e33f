"""Labelled map sets: the project's annotated corpus and the two file layouts of the original authors.

All importers return a :class:`LabeledSet` (maps, pattern-type labels, names, and the *group* of each map, so that
maps of one source text never sit on both sides of a split). Supported formats, registered in :data:`FORMATS`:

``corpus``
    The project's corpus in ``annotations/`` (read through :func:`attnpatterns.annotation.corpus.load_corpus`);
    effective labels only; group = the text id (one text, whatever the model).
``npy-labels``
    A folder of square ``.npy`` maps plus ``labels.txt`` whose lines read ``label = name1, name2, ...`` (the
    layout of the original raw-map labels). Names may carry the ``.npy`` suffix or not.
``npy-tsv``
    A folder of square ``.npy`` maps plus a TSV file with ``name<TAB>label`` lines (the layout of the original
    norm-weighted-map labels); an optional header line ``name<TAB>label`` is skipped.

Label names go through a :class:`~attnpatterns.annotation.labels.LabelMap`. For the ``.npy`` formats each map is its
own group unless ``group_pattern`` (a regular expression) is given: then the group of a map is the first capture
group (or the whole match) of the pattern searched in its name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP, LabelMap, read_label_text
from attnpatterns.constants import MAP_KINDS, PATTERN_TYPES
from attnpatterns.patterns.preprocess import validate_map

LABELS_TXT = "labels.txt"


class DataError(ValueError):
    """A labelled set that cannot be read or used (missing files, duplicated names, empty classes, ...)."""


@dataclass
class LabeledSet:
    """Maps with pattern-type labels. ``labels`` are values of :data:`PATTERN_TYPES`. ``segments``, when the source
    has them (the annotated corpus does; loose ``.npy`` maps do not), holds each map's segment ids."""

    names: list[str]
    arrays: list[np.ndarray]
    labels: list[str]
    groups: list[str]
    kind: str | None = None
    source: str = ""
    meta: dict = field(default_factory=dict)
    segments: list[list[int]] | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (len(self.arrays) == len(self.labels) == len(self.groups) == n):
            raise DataError("names, arrays, labels and groups must have the same length")
        if self.segments is not None and len(self.segments) != n:
            raise DataError("segments must hold one list of segment ids per map")
        bad = sorted({lab for lab in self.labels if lab not in PATTERN_TYPES})
        if bad:
            raise DataError(f"labels {bad} are not pattern types ({', '.join(PATTERN_TYPES)})")
        if self.kind is not None and self.kind not in MAP_KINDS:
            raise DataError(f"kind must be one of {', '.join(MAP_KINDS)}, got {self.kind!r}")
        duplicated = [name for name, count in Counter(self.names).items() if count > 1]
        if duplicated:
            raise DataError(f"map names must be unique; repeated: {duplicated[:5]}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def y(self) -> np.ndarray:
        """Class indices into :data:`PATTERN_TYPES`, shape (N,)."""
        return np.array([PATTERN_TYPES.index(lab) for lab in self.labels], dtype=np.int64)

    def digest(self) -> str:
        """sha256 of the set's content: names, labels, groups, segment ids and the arrays' bytes, in order (what
        training and evaluation runs put in their fingerprints, so that changed labels make another run)."""
        digest = hashlib.sha256()
        segments = self.segments or [None] * len(self.names)
        for name, label, group, array, seg in zip(self.names, self.labels, self.groups, self.arrays, segments):
            digest.update(json.dumps([name, label, group, seg, list(np.shape(array))]).encode())
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {t: counts.get(t, 0) for t in PATTERN_TYPES}

    def subset(self, indices: Sequence[int]) -> LabeledSet:
        idx = [int(i) for i in indices]
        return LabeledSet(
            [self.names[i] for i in idx],
            [self.arrays[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.groups[i] for i in idx],
            self.kind,
            self.source,
            dict(self.meta),
            None if self.segments is None else [self.segments[i] for i in idx],
        )

    def data_hash(self) -> str:
        """SHA-256 over names, labels and map bytes (in name order): identifies the training data exactly."""
        digest = hashlib.sha256()
        for i in sorted(range(len(self)), key=lambda k: self.names[k]):
            arr = np.ascontiguousarray(self.arrays[i], dtype=np.float32)
            digest.update(self.names[i].encode())
            digest.update(self.labels[i].encode())
            digest.update(str(arr.shape).encode())
            digest.update(arr.tobytes())
        return digest.hexdigest()

    def summary(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "n_maps": len(self),
            "n_groups": len(set(self.groups)),
            "class_counts": self.class_counts(),
            "data_sha256": self.data_hash(),
        }


def _group_of(name: str, pattern: re.Pattern | None) -> str:
    if pattern is None:
        return name
    match = pattern.search(name)
    if match is None:
        return name
    return match.group(1) if match.groups() else match.group(0)


def _compile_group_pattern(text: str | None) -> re.Pattern | None:
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise DataError(
            f"group pattern {text!r} is not a valid regular expression ({exc}); e.g. --group-pattern '^(ex\\d+)_'"
        ) from exc


def _strip_npy(name: str) -> str:
    return name[:-4] if name.lower().endswith(".npy") else name


def _load_npy(folder: Path, name: str) -> np.ndarray:
    path = folder / f"{_strip_npy(name)}.npy"
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path} is not a plain numeric .npy array (pickled objects are refused): {exc}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return validate_map(arr, name=str(path))


def _labeled_from_pairs(
    folder: Path,
    pairs: list[tuple[str, str, str]],
    label_map: LabelMap,
    kind: str | None,
    group_pattern: str | None,
    source: str,
) -> LabeledSet:
    """Build a set from (name, raw label, where-it-was-read) triples; checks duplicates and missing files."""
    seen: dict[str, tuple[str, str]] = {}
    for name, label, where in pairs:
        key = _strip_npy(name)
        if key in seen and label_map(seen[key][0]) != label_map(label):
            raise DataError(
                f"map {key!r} has two different labels: {seen[key][0]!r} ({seen[key][1]}) and {label!r} ({where})"
            )
        seen.setdefault(key, (label, where))
    if not seen:
        raise DataError(f"no labelled maps found in {source}")
    names = sorted(seen)
    missing = [n for n in names if not (folder / f"{n}.npy").is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} labelled map(s) have no .npy file in {folder}: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    labels = label_map.map_all(seen[n][0] for n in names)
    pattern = _compile_group_pattern(group_pattern)
    return LabeledSet(
        names=names,
        arrays=[_load_npy(folder, n) for n in names],
        labels=labels,
        groups=[_group_of(n, pattern) for n in names],
        kind=kind,
        source=source,
    )


def read_npy_labels(
    path: str | Path,
    kind: str | None = None,
    label_map: LabelMap = DEFAULT_LABEL_MAP,
    group_pattern: str | None = None,
) -> LabeledSet:
    """Folder of ``.npy`` maps + ``labels.txt`` with ``label = name1, name2, ...`` lines.

    ``path`` is the folder (holding ``labels.txt``) or the labels file itself (maps next to it).
    """
    path = Path(path)
    labels_file = path / LABELS_TXT if path.is_dir() else path
    if not labels_file.is_file():
        raise DataError(f"{labels_file} not found; the npy-labels format needs a {LABELS_TXT} beside the maps")
    pairs = []
    text = read_label_text(labels_file, "lines 'label = name1, name2, ...' (npy-labels format)", DataError)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise DataError(f"{labels_file}:{number}: expected 'label = name1, name2, ...', got {raw!r}")
        label, names = line.split("=", 1)
        for name in names.split(","):
            if name.strip():
                pairs.append((name.strip(), label.strip(), f"{labels_file.name}:{number}"))
    return _labeled_from_pairs(labels_file.parent, pairs, label_map, kind, group_pattern, str(labels_file))


def _find_tsv(folder: Path) -> Path:
    candidates = sorted(folder.glob("*.tsv"))
    if len(candidates) != 1:
        found = ", ".join(c.name for c in candidates) or "none"
        raise DataError(f"expected exactly one .tsv label file in {folder} (found {found}); pass the file itself")
    return candidates[0]


def read_npy_tsv(
    path: str | Path,
    kind: str | None = None,
    label_map: LabelMap = DEFAULT_LABEL_MAP,
    group_pattern: str | None = None,
) -> LabeledSet:
    """Folder of ``.npy`` maps + a TSV with ``name<TAB>label`` lines.

    ``path`` is the TSV file (maps next to it) or a folder holding exactly one ``.tsv``.
    """
    path = Path(path)
    tsv = _find_tsv(path) if path.is_dir() else path
    if not tsv.is_file():
        raise DataError(f"{tsv} not found")
    pairs = []
    lines = read_label_text(tsv, "'name<TAB>label' lines (npy-tsv format)", DataError).splitlines()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.split("\t")
        if len(fields) < 2:
            raise DataError(f"{tsv}:{number}: expected 'name<TAB>label', got {raw!r}")
        name, label = fields[0].strip(), fields[1].strip()
        if not pairs and name.lower() in {"name", "map", "map_id", "file"} and label.lower() == "label":
            continue  # header
        pairs.append((name, label, f"{tsv.name}:{number}"))
    return _labeled_from_pairs(tsv.parent, pairs, label_map, kind, group_pattern, str(tsv))


def read_corpus(
    path: str | Path | None = None,
    kind: str | None = None,
    label_map: LabelMap = DEFAULT_LABEL_MAP,
    group_pattern: str | None = None,
) -> LabeledSet:
    """The project's annotated corpus (``annotations/``), effective labels only; ``group_pattern`` is unused."""
    try:
        from attnpatterns.annotation.corpus import DEFAULT_CORPUS_DIR, CorpusError, load_corpus, require_corpus
    except ImportError as exc:  # pragma: no cover - only before the annotation package exists
        raise DataError(f"the annotation corpus loader is not available: {exc}") from exc
    root = Path(path) if path is not None else Path(DEFAULT_CORPUS_DIR)
    try:
        require_corpus(root, option="--data")
    except CorpusError as exc:
        raise DataError(str(exc)) from exc
    try:
        maps = load_corpus(root=root, kind=kind)
    except FileNotFoundError as exc:
        raise DataError(f"no annotated corpus at {root}: {exc}") from exc
    if not maps:
        raise DataError(f"the corpus at {root} has no labelled maps of kind {kind or 'any'}")
    kinds = sorted({m.kind for m in maps})
    if kind is None and len(kinds) > 1:
        raise DataError(f"the corpus at {root} mixes kinds {kinds}; choose one with kind=/--kind")
    return LabeledSet(
        names=[m.map_id for m in maps],
        arrays=[validate_map(m.array, name=m.map_id) for m in maps],
        labels=label_map.map_all(m.label for m in maps),
        groups=[m.group for m in maps],
        kind=kind or kinds[0],
        source=str(path) if path is not None else "annotations/ (the project corpus)",
        segments=[list(m.segment_ids) for m in maps],
    )


Reader = Callable[..., LabeledSet]

#: Format name -> reader. Every reader takes ``(path, kind=, label_map=, group_pattern=)``.
FORMATS: dict[str, Reader] = {"corpus": read_corpus, "npy-labels": read_npy_labels, "npy-tsv": read_npy_tsv}


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path``: a corpus folder, a labels.txt folder/file or a TSV folder/file."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".tsv":
            return "npy-tsv"
        if path.suffix.lower() == ".txt":
            return "npy-labels"
    elif path.is_dir():
        if (path / "maps.jsonl").is_file() or (path / "labels.csv").is_file():
            return "corpus"
        if (path / LABELS_TXT).is_file():
            return "npy-labels"
        if any(path.glob("*.tsv")):
            return "npy-tsv"
    else:
        raise DataError(f"{path} does not exist")
    raise DataError(
        f"cannot tell the format of {path}; pass one of {', '.join(FORMATS)} "
        "(corpus: annotations/ folder; npy-labels: .npy maps + labels.txt; npy-tsv: .npy maps + name<TAB>label TSV)"
    )


def load_labeled(
    path: str | Path | None = None,
    format: str = "auto",
    kind: str | None = None,
    label_map: LabelMap = DEFAULT_LABEL_MAP,
    group_pattern: str | None = None,
) -> LabeledSet:
    """Read a labelled set in any supported format (``auto`` detects it; ``None`` path = the project corpus)."""
    if path is None:
        format = "corpus" if format == "auto" else format
    elif format == "auto":
        format = detect_format(path)
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if kind is not None and kind not in MAP_KINDS:
        raise DataError(f"kind must be one of {', '.join(MAP_KINDS)}, got {kind!r}")
    return FORMATS[format](path, kind=kind, label_map=label_map, group_pattern=group_pattern)


def read_npy_folder(folder: str | Path) -> tuple[list[str], list[np.ndarray]]:
    """All ``*.npy`` maps of a folder (sorted by name), validated; for classifying unlabelled maps."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is a file, not a folder"
        raise DataError(
            f"{folder} {what}; pass an extraction run folder (written by `attnpatterns extract -o`) or a folder "
            "of square .npy maps"
        )
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise DataError(f"no .npy maps in {folder}")
    names = [f.stem for f in files]
    return names, [_load_npy(folder, n) for n in names]

"""The annotated-map corpus: maps in one safetensors file, their metadata in JSONL, labels in an append-only CSV.

A corpus is a folder (``annotations/`` in the repository) holding three files:

- ``maps.safetensors``: one float16 tensor per map, keyed by its ``map_id`` (square T x T, real tokens only);
- ``maps.jsonl``: one JSON object per map (map_id, model, text_id, text_kind, layer, head, kind, n_tokens, tokens,
  segment_ids), in the order the maps were added;
- ``labels.csv``: every labelling act, one row each, never rewritten. The effective label of a map is the label of
  the LAST row (file order) for that map whose ``pass`` is not ``second``; ``second`` rows are the independent
  re-labelling used for inter-annotator agreement. A row whose label is ``retracted`` (written by *undo*) clears
  the effective label, so that an append-only table can still take a label back.

Writers hold a :mod:`filelock` lock on the file they change and replace it atomically (write a temporary file in
the same folder, fsync, ``os.replace``), so a crash never leaves a half-written row and two writers (two notebooks,
a notebook and the CLI) never interleave. Readers need no lock: they see the old or the new file, never a mix.
Maps are written before their index, so a reader can at worst see a tensor whose index line is not there yet.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from filelock import FileLock

from attnpatterns.annotation.labels import canonical_name
from attnpatterns.constants import DEFAULT_MODEL, MAP_KINDS, PATTERN_TYPES
from attnpatterns.runfolder import atomic_write_bytes

#: The corpus shipped in the repository (``<repo>/annotations``).
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[2] / "annotations"

MAPS_FILE = "maps.safetensors"
MAP_INDEX_FILE = "maps.jsonl"
LABELS_FILE = "labels.csv"

#: Columns of ``labels.csv`` in file order.
LABEL_COLUMNS: tuple[str, ...] = (
    "map_id", "label", "annotator", "method", "pass", "date", "note",
    "model", "text_id", "layer", "head", "kind", "n_tokens",
)
#: Labelling passes. ``second`` rows never set the effective label; ``adjudicated`` rows resolve disagreements.
PASSES: tuple[str, ...] = ("first", "second", "adjudicated")
#: The label an *undo* writes when there was no earlier label to restore.
RETRACTED = "retracted"
TEXT_KINDS: tuple[str, ...] = ("single", "pair")


# --------------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CorpusMap:
    """One attention map of the corpus with its source; ``array`` is float32 (T, T), rows = queries."""

    map_id: str
    model: str
    text_id: str
    text_kind: str
    layer: int
    head: int
    kind: str
    tokens: list[str]
    segment_ids: list[int]
    array: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)
        self.layer, self.head = int(self.layer), int(self.head)
        self.tokens = [str(t) for t in self.tokens]
        self.segment_ids = [int(s) for s in self.segment_ids]
        if self.array.ndim != 2 or self.array.shape[0] != self.array.shape[1]:
            raise ValueError(f"map {self.map_id!r}: array must be square (T, T), got shape {self.array.shape}")
        t = self.array.shape[0]
        if len(self.tokens) != t or len(self.segment_ids) != t:
            raise ValueError(
                f"map {self.map_id!r}: array is {t} x {t} but there are {len(self.tokens)} tokens and "
                f"{len(self.segment_ids)} segment ids; crop the map to the real tokens"
            )
        if self.kind not in MAP_KINDS:
            raise ValueError(f"map {self.map_id!r}: kind {self.kind!r} is not one of {', '.join(MAP_KINDS)}")
        if self.text_kind not in TEXT_KINDS:
            raise ValueError(f"map {self.map_id!r}: text_kind {self.text_kind!r} is not one of {TEXT_KINDS}")
        if not self.map_id or any(c in self.map_id for c in "\t\n\r,\""):
            raise ValueError(f"map id {self.map_id!r} is empty or holds a tab, newline, comma or quote")

    @property
    def n_tokens(self) -> int:
        return int(self.array.shape[0])

    @classmethod
    def from_metadata(cls, meta: Mapping, array: np.ndarray) -> "CorpusMap":
        """Rebuild a map from its ``maps.jsonl`` line and its array."""
        fields = ("map_id", "model", "text_id", "text_kind", "layer", "head", "kind", "tokens", "segment_ids")
        return cls(**{k: meta[k] for k in fields}, array=array)

    def metadata(self) -> dict:
        """The ``maps.jsonl`` line of this map (everything but the array)."""
        return {
            "map_id": self.map_id, "model": self.model, "text_id": self.text_id, "text_kind": self.text_kind,
            "layer": self.layer, "head": self.head, "kind": self.kind, "n_tokens": self.n_tokens,
            "tokens": self.tokens, "segment_ids": self.segment_ids,
        }


@dataclass
class LabeledMap:
    """A corpus map with its effective label (one of :data:`PATTERN_TYPES`)."""

    map_id: str
    array: np.ndarray = field(repr=False)
    label: str
    kind: str
    model: str
    text_id: str
    layer: int
    head: int
    n_tokens: int
    tokens: list[str]
    segment_ids: list[int] = field(default_factory=list)
    text_kind: str = "single"
    annotator: str = ""
    method: str = ""

    @property
    def label_index(self) -> int:
        return PATTERN_TYPES.index(self.label)

    @property
    def group(self) -> str:
        """The group of a grouped split: the text id, so that maps of one text never sit on both sides of a split,
        whichever model (pretrained or fine-tuned) they come from. Runs over different inputs get distinct text ids
        (``build-corpus --text-prefix``)."""
        return self.text_id


@dataclass
class LabelRow:
    """One row of ``labels.csv``."""

    map_id: str
    label: str
    annotator: str
    method: str
    pass_: str = "first"
    date: str = ""
    note: str = ""
    model: str = ""
    text_id: str = ""
    layer: int | str = ""
    head: int | str = ""
    kind: str = ""
    n_tokens: int | str = ""

    def to_csv_dict(self) -> dict[str, str]:
        d = asdict(self)
        d["pass"] = d.pop("pass_")
        return {k: "" if d[k] is None else str(d[k]) for k in LABEL_COLUMNS}

    @classmethod
    def from_csv_dict(cls, d: Mapping[str, str]) -> "LabelRow":
        kwargs = {k: (d.get(k) or "") for k in LABEL_COLUMNS if k != "pass"}
        kwargs["pass_"] = d.get("pass") or "first"
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------------------------
# Map ids
# --------------------------------------------------------------------------------------------------------------

_SLUG = re.compile(r"[^A-Za-z0-9_.]+")


def slug(text: str) -> str:
    """``text`` with every run of characters other than letters, digits, ``_`` and ``.`` turned into ``-``."""
    return _SLUG.sub("-", str(text)).strip("-") or "x"


def model_short_name(model: str) -> str:
    """A short, id-friendly name for a model: ``bundled:all-MiniLM-L6-v2`` -> ``minilm``.

    Other names give their last path component, lower-cased and slugged. Callers that annotate several models
    whose folders share a last component pass an explicit tag instead.
    """
    if model == DEFAULT_MODEL or model.rstrip("/").lower().endswith("all-minilm-l6-v2"):
        return "minilm"
    name = str(model).split(":", 1)[-1].rstrip("/").split("/")[-1]
    return slug(name).lower()


def make_map_id(model_tag: str, layer: int, head: int, text_id: str, kind: str) -> str:
    """Stable, human-readable id: ``make_map_id("minilm", 3, 7, "s042", "raw") == "minilm-L3H7-s042-raw"``."""
    return f"{slug(model_tag)}-L{int(layer)}H{int(head)}-{slug(text_id)}-{kind}"


# --------------------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------------------

#: What an annotator may type, keyed by :func:`~attnpatterns.annotation.labels.canonical_name` with every separator
#: removed: the five names and the shorthands. Stricter than the importers' :data:`DEFAULT_LABEL_TABLE` on purpose
#: ("mix" or "other" are names of the original authors' files, not labels to type).
_TYPED_LABELS = {
    **{name.replace("+", ""): name for name in PATTERN_TYPES},
    "v": "vertical", "d": "diagonal", "vd": "vertical+diagonal", "dv": "vertical+diagonal",
    "diagonalvertical": "vertical+diagonal", "b": "block", "h": "heterogeneous", "heterogenous": "heterogeneous",
}


def parse_label(text: str) -> str:
    """Map a typed label to one of :data:`PATTERN_TYPES`, tolerant of case, spacing and shorthands.

    Accepts the five names in any case with any spacing (``"Vertical + Diagonal"``), ``_``/``-``/``&``/``/`` for
    ``+``, and the shorthands ``v``, ``d``, ``vd`` (or ``v+d``), ``b``, ``h``. Raises ``ValueError`` listing the
    valid labels otherwise.
    """
    label = _TYPED_LABELS.get(re.sub(r"[\s+&/]+", "", canonical_name(text)))
    if label is not None:
        return label
    raise ValueError(
        f"unknown label {str(text)!r}; valid labels are {', '.join(PATTERN_TYPES)} "
        "(any case/spacing) or the shorthands v, d, vd, b, h"
    )


class CorpusError(ValueError):
    """A corpus folder that does not exist or is not a corpus (a mistyped ``--corpus``)."""


def require_corpus(root: str | Path, option: str = "--corpus") -> Path:
    """``root`` as a Path if it is a corpus folder (holds ``maps.jsonl``); :class:`CorpusError` otherwise.

    Commands that only read a corpus call this first, so that a mistyped ``--corpus`` is an error that names the
    path instead of an empty corpus (and never creates a folder).
    """
    root = Path(root)
    hint = (f"check {option} (default: the repository's annotations/) or start one with "
            "`attnpatterns annotate build-corpus`")
    if not root.exists():
        raise CorpusError(f"no annotation corpus at {root}: the folder does not exist; {hint}.")
    if not root.is_dir():
        raise CorpusError(f"{root} is a file, not an annotation corpus folder; {hint}.")
    if not (root / MAP_INDEX_FILE).is_file():
        raise CorpusError(f"{root} is not an annotation corpus (it has no {MAP_INDEX_FILE}); {hint}.")
    return root


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------------------
# Atomic file writing
# --------------------------------------------------------------------------------------------------------------


def corpus_lock(path: Path) -> FileLock:
    """The lock a writer holds while it replaces the corpus file ``path`` (a ``.lock`` file beside it)."""
    return FileLock(str(path) + ".lock", timeout=120)


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def read_map_index(root: str | Path = DEFAULT_CORPUS_DIR) -> list[dict]:
    """The ``maps.jsonl`` lines, in file order ([] when the corpus has no maps yet)."""
    path = Path(root) / MAP_INDEX_FILE
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise CorpusError(f"{path}:{lineno} is damaged ({err.msg}); restore {MAP_INDEX_FILE} from version "
                                  "control or a backup") from err
    return out


def read_arrays(root: str | Path = DEFAULT_CORPUS_DIR, map_ids: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """float32 arrays of the given maps (all maps when ``map_ids`` is None)."""
    from safetensors import safe_open

    path = Path(root) / MAPS_FILE
    if not path.exists():
        return {}
    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="numpy") as f:
            keys = set(f.keys())
            wanted = keys if map_ids is None else [m for m in map_ids if m in keys]
            for key in wanted:
                out[key] = np.asarray(f.get_tensor(key), dtype=np.float32)
    except MemoryError:
        raise
    except Exception as err:  # safetensors' own error type (and OSError) for a truncated or garbled file
        raise CorpusError(f"{path} cannot be read ({err}); restore {MAPS_FILE} from version control or a "
                          "backup") from err
    return out


def _check_complete(root: Path, labelled: Sequence[str], index: Sequence[dict], arrays: Mapping) -> None:
    """Every labelled map must have its index line and its array: one missing means the corpus is damaged (labels
    are only imported for maps of the corpus), and training or scoring on the rest would pass unnoticed."""
    known = {m["map_id"] for m in index}
    no_line = [m for m in labelled if m not in known]
    no_array = [m for m in labelled if m in known and m not in arrays]
    if no_line or no_array:
        parts = [f"{len(no_line)} have no line in {MAP_INDEX_FILE} (e.g. {no_line[:3]})" if no_line else "",
                 f"{len(no_array)} no array in {MAPS_FILE} (e.g. {no_array[:3]})" if no_array else ""]
        raise CorpusError(f"the corpus at {root} is damaged: of its labelled maps, "
                          f"{' and '.join(p for p in parts if p)}; restore it from version control or a backup")


def read_maps(root: str | Path = DEFAULT_CORPUS_DIR, kind: str | None = None) -> list[CorpusMap]:
    """Every map of the corpus (optionally of one kind) with its array, in index order."""
    index = [m for m in read_map_index(root) if kind is None or m["kind"] == kind]
    arrays = read_arrays(root, [m["map_id"] for m in index])
    return [CorpusMap.from_metadata(m, arrays[m["map_id"]]) for m in index if m["map_id"] in arrays]


def read_labels(root: str | Path = DEFAULT_CORPUS_DIR) -> list[LabelRow]:
    """Every row of ``labels.csv`` in file order ([] when nothing is labelled yet)."""
    path = Path(root) / LABELS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [LabelRow.from_csv_dict(d) for d in csv.DictReader(f)]


def effective_label_rows(rows: Sequence[LabelRow]) -> dict[str, LabelRow]:
    """The row that sets each map's effective label: the last row per map whose pass is not ``second``.

    Maps whose last such row is ``retracted`` are left out (they count as unlabelled).
    """
    last: dict[str, LabelRow] = {}
    for row in rows:
        if row.pass_ != "second":
            last[row.map_id] = row
    return {m: r for m, r in last.items() if r.label != RETRACTED}


def effective_labels(root: str | Path = DEFAULT_CORPUS_DIR) -> dict[str, str]:
    """``{map_id: label}`` for every map that has an effective label (see the module docstring)."""
    return {m: r.label for m, r in effective_label_rows(read_labels(root)).items()}


def load_corpus(root: str | Path = DEFAULT_CORPUS_DIR, kind: str | None = None) -> list[LabeledMap]:
    """The labelled maps of the corpus (effective labels only), optionally of one kind, in index order."""
    if kind is not None and kind not in MAP_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(MAP_KINDS)}")
    labels = effective_label_rows(read_labels(root))
    full_index = read_map_index(root)
    index = [m for m in full_index if m["map_id"] in labels and (kind is None or m["kind"] == kind)]
    arrays = read_arrays(root, [m["map_id"] for m in index])
    kinds = {m["map_id"]: m["kind"] for m in full_index}
    wanted = [m for m in labels if kind is None or kinds.get(m, kind) == kind]
    _check_complete(Path(root), wanted, full_index, arrays)
    out = []
    for m in index:
        row = labels[m["map_id"]]
        out.append(LabeledMap(
            map_id=m["map_id"], array=arrays[m["map_id"]], label=row.label, kind=m["kind"], model=m["model"],
            text_id=m["text_id"], layer=int(m["layer"]), head=int(m["head"]), n_tokens=int(m["n_tokens"]),
            tokens=list(m["tokens"]), segment_ids=list(m["segment_ids"]), text_kind=m["text_kind"],
            annotator=row.annotator, method=row.method,
        ))
    return out


def as_dataset(root: str | Path = DEFAULT_CORPUS_DIR, kind: str | None = None):
    """The labelled corpus as a :class:`datasets.Dataset` (one row per map; ``label`` is a ClassLabel).

    ``array`` is a nested list (T x T, float32; T varies between maps), ``group`` is the text id (see
    :attr:`LabeledMap.group`) for grouped splits.
    """
    import datasets

    maps = load_corpus(root, kind=kind)
    features = datasets.Features({
        "map_id": datasets.Value("string"),
        "array": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
        "label": datasets.ClassLabel(names=list(PATTERN_TYPES)),
        "kind": datasets.Value("string"),
        "model": datasets.Value("string"),
        "text_id": datasets.Value("string"),
        "text_kind": datasets.Value("string"),
        "layer": datasets.Value("int32"),
        "head": datasets.Value("int32"),
        "n_tokens": datasets.Value("int32"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "segment_ids": datasets.Sequence(datasets.Value("int32")),
        "annotator": datasets.Value("string"),
        "method": datasets.Value("string"),
        "group": datasets.Value("string"),
    })
    columns: dict[str, list] = {name: [] for name in features}
    for m in maps:
        for name in features:
            if name == "array":
                columns[name].append(m.array.tolist())
            elif name == "label":
                columns[name].append(m.label_index)
            elif name == "group":
                columns[name].append(m.group)
            else:
                columns[name].append(getattr(m, name))
    return datasets.Dataset.from_dict(columns, features=features)


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def add_maps(root: str | Path, records: Iterable[CorpusMap]) -> list[str]:
    """Add maps to the corpus; return the ids that were new.

    A map whose id is already present with the same content (metadata and float16 array) is skipped; the same id
    with different content raises ``ValueError`` and nothing is written.
    """
    from safetensors.numpy import save

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise CorpusError(f"{root} is a file, not an annotation corpus folder; give --corpus a folder.")
    if root.is_dir() and any(root.iterdir()) and not (root / MAP_INDEX_FILE).is_file():
        # a folder of someone else's files (a maps.safetensors of their own, say) is never rewritten
        raise CorpusError(f"{root} holds files but is not an annotation corpus (it has no {MAP_INDEX_FILE}); "
                          "add maps to an existing corpus or to a new (or empty) folder.")
    root.mkdir(parents=True, exist_ok=True)
    records = list(records)
    with corpus_lock(root / MAPS_FILE):
        index = read_map_index(root)
        known = {m["map_id"]: m for m in index}
        stored = {k: v.astype(np.float16) for k, v in read_arrays(root).items()}
        new_ids: list[str] = []
        for rec in records:
            meta, arr = rec.metadata(), rec.array.astype(np.float16)
            if rec.map_id in known:
                if known[rec.map_id] != meta or not np.array_equal(stored.get(rec.map_id), arr):
                    raise ValueError(
                        f"map id {rec.map_id!r} is already in the corpus at {root} with different content; "
                        "give the new map another id instead of overwriting (build-corpus: --model-tag for another "
                        "model, --text-prefix for other input texts with the same example ids)"
                    )
                continue
            known[rec.map_id], stored[rec.map_id] = meta, arr
            index.append(meta)
            new_ids.append(rec.map_id)
        if not new_ids:
            return []
        # Maps first, then the index: a reader never sees an index line without its tensor.
        atomic_write_bytes(root / MAPS_FILE, save({k: np.ascontiguousarray(v) for k, v in stored.items()}))
        lines = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in index)
        atomic_write_bytes(root / MAP_INDEX_FILE, lines.encode("utf-8"))
    return new_ids


def append_labels(root: str | Path, rows: Iterable[LabelRow | Mapping],
                  check: Callable[[list[LabelRow]], None] | None = None) -> list[LabelRow]:
    """Append label rows to ``labels.csv`` atomically under a file lock; return the rows as written.

    Each row needs map_id, label, annotator, method and pass (``pass`` or ``pass_``); label is parsed with
    :func:`parse_label` (or is ``retracted``); date defaults to now (UTC) and the source columns (model, text_id,
    layer, head, kind, n_tokens) are filled from ``maps.jsonl``. Every row is validated before anything is
    written: one bad row writes none. ``check``, when given, is called under the lock with the rows of
    ``labels.csv`` as they are then (e.g. to refuse a label another session wrote meanwhile); if it raises, nothing
    is written.
    """
    root = Path(root)
    index = {m["map_id"]: m for m in read_map_index(root)}
    prepared: list[LabelRow] = []
    for row in rows:
        if not isinstance(row, LabelRow):
            d = dict(row)
            if "pass" in d:
                d["pass_"] = d.pop("pass")
            row = LabelRow(**d)
        meta = index.get(row.map_id)
        if meta is None:
            raise ValueError(f"map id {row.map_id!r} is not in the corpus at {root}; add the map first")
        label = RETRACTED if row.label == RETRACTED else parse_label(row.label)
        if row.pass_ not in PASSES:
            raise ValueError(f"pass {row.pass_!r} is not one of {', '.join(PASSES)}")
        if not str(row.annotator).strip():
            raise ValueError("every label needs an annotator name")
        prepared.append(LabelRow(
            map_id=row.map_id, label=label, annotator=str(row.annotator).strip(), method=str(row.method),
            pass_=row.pass_, date=row.date or _now(), note=str(row.note or ""), model=meta["model"],
            text_id=meta["text_id"], layer=meta["layer"], head=meta["head"], kind=meta["kind"],
            n_tokens=meta["n_tokens"],
        ))
    if not prepared:
        return []
    path = root / LABELS_FILE
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LABEL_COLUMNS), lineterminator="\n")
    for row in prepared:
        writer.writerow(row.to_csv_dict())
    head = io.StringIO()
    csv.DictWriter(head, fieldnames=list(LABEL_COLUMNS), lineterminator="\n").writeheader()
    append_lines(path, buf.getvalue().encode("utf-8"), header=head.getvalue().encode("utf-8"),
                 before=None if check is None else lambda: check(read_labels(root)))
    return prepared


def append_lines(path: Path, data: bytes, header: bytes = b"", before: Callable[[], None] | None = None) -> None:
    """Append ``data`` (whole lines) to the corpus file ``path`` under its lock, replacing the file atomically; a
    new or empty file starts with ``header``, and a last line without its newline gets one first. ``before``, when
    given, runs under the lock first; an exception from it writes nothing."""
    with corpus_lock(path):
        if before is not None:
            before()
        old = path.read_bytes() if path.exists() else b""
        if not old:
            old = header
        elif not old.endswith(b"\n"):
            old += b"\n"
        atomic_write_bytes(path, old + data)


class CorpusWriter:
    """A corpus folder to add maps and labels to; a thin object wrapper over :func:`add_maps`/:func:`append_labels`."""

    def __init__(self, root: str | Path = DEFAULT_CORPUS_DIR):
        self.root = Path(root)

    def add_maps(self, records: Iterable[CorpusMap]) -> list[str]:
        return add_maps(self.root, records)

    def append_labels(self, rows: Iterable[LabelRow | Mapping]) -> list[LabelRow]:
        return append_labels(self.root, rows)

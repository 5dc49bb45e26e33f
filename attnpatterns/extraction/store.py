"""The on-disk layout of an extraction run, its chunked writer and its lazy reader.

A run folder holds::

    manifest.json          what made the run (model, revision, masks, inputs, versions, command, seed, device)
    heads.json             per layer, the ORIGINAL ids of the heads that have maps (masked heads have none)
    examples.jsonl         one line per finished example: id, texts, tokens, segment ids, shard and row, and the
                           shard's size and sha256 as written
    maps/shard-NNNNN.safetensors
                           one tensor per (example row, kind, layer) named "<row>/<kind>/<layer>", shape
                           (heads kept, T, T), float16 by default; T = the example's real tokens (no padding).
                           Layer-level kinds (LAYER_KINDS: rollout, resln, alti, valuezero) have one map per
                           layer, for every layer: shape (1, T, T), listed under head id LAYER_HEAD (-1).
                           Normed maps are stored as their two factors (see below): the raw map
                           "<row>/raw/<layer>" (stored for a normed-only run too) and "<row>/column_norms/<layer>",
                           shape (heads kept, T), always float32

Normed maps, ‖α_ij f_h(x_j)‖ = α_ij ‖f_h(x_j)‖, are the raw map with column j scaled by ‖f_h(x_j)‖, so a shard
keeps the raw map and the T column norms per head instead of a second T × T map: half the bytes of a raw + normed
run. Readers multiply them back in float32 (the same float32 product the hooks form, so a float32 run gives the
very bits of the capture; in a float16 run the one rounding is the raw map's instead of the product's, the same
relative precision, 2⁻¹¹). Shards written by earlier versions hold "<row>/normed/<layer>" maps instead; readers,
``verify`` and the resume take either layout, shard by shard.

Together ``examples.jsonl`` and ``heads.json`` are the index (example id, tokens, layer, original head id, kind);
:meth:`MapRun.index` expands them into one row per map. Shards are written whole and atomically, and an example's
index line is appended only after its shard is on disk, so a killed run never leaves a half-written map visible:
on resume, shards that no index line points to are discarded and their examples recomputed.

Every index line carries its shard's byte size and sha256 (``shard_bytes``, ``shard_sha256``), written in the same
append that makes the example finished: there is no moment at which an example is finished but its shard's checksum
is not recorded, and no second index to keep in step. :meth:`MapRun.verify` checks every shard against them (and
that it parses and holds the tensors its lines promise); readers hash a shard when they first open it. Runs written
before checksums existed have lines without them: their shards are checked by parsing only.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from attnpatterns.constants import LAYER_HEAD, LAYER_KINDS, MANIFEST_FILE
from attnpatterns.runfolder import (
    atomic_write_file,
    atomic_write_text,
    file_sha256,
    read_json,
    read_manifest,
)

EXAMPLES_FILE = "examples.jsonl"
HEADS_FILE = "heads.json"
MAPS_DIR = "maps"
RUN_TYPE = "extraction"


#: What :meth:`MapRun.verify` may find wrong with a shard.
MISSING, TRUNCATED, CHECKSUM_MISMATCH, UNREADABLE = "missing", "truncated", "checksum mismatch", "unreadable"


class RunError(ValueError):
    """A folder is not a usable extraction run, or a request names a map the run does not hold."""


class DamagedShardError(RunError):
    """A shard of the run is missing, truncated, altered or unreadable; rerunning ``extract`` repairs it."""


@dataclass(frozen=True)
class ExampleRecord:
    example_id: str
    text_a: str
    text_b: str | None
    tokens: list[str]
    segment_ids: list[int]
    shard: str
    row: int
    truncated: bool = False
    shard_sha256: str | None = None  # None: written before checksums were recorded
    shard_bytes: int | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict:
        return {
            "example_id": self.example_id,
            "text_a": self.text_a,
            "text_b": self.text_b,
            "tokens": self.tokens,
            "segment_ids": self.segment_ids,
            "n_tokens": self.n_tokens,
            "shard": self.shard,
            "row": self.row,
            "truncated": self.truncated,
            "shard_sha256": self.shard_sha256,
            "shard_bytes": self.shard_bytes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ExampleRecord":
        return cls(
            example_id=str(d["example_id"]),
            text_a=d["text_a"],
            text_b=d.get("text_b"),
            tokens=list(d["tokens"]),
            segment_ids=list(d["segment_ids"]),
            shard=d["shard"],
            row=int(d["row"]),
            truncated=bool(d.get("truncated", False)),
            shard_sha256=d.get("shard_sha256"),
            shard_bytes=None if d.get("shard_bytes") is None else int(d["shard_bytes"]),
        )


@dataclass(frozen=True)
class MapRecord:
    example_id: str
    layer: int
    head: int
    kind: str
    array: np.ndarray  # float32 (T, T)
    tokens: list[str]
    segment_ids: list[int]


#: The stored second factor of the normed maps: ‖f_h(x_j)‖ per kept head and token, (heads kept, T), float32.
COLUMN_NORMS = "column_norms"


def tensor_key(row: int, kind: str, layer: int) -> str:
    return f"{row}/{kind}/{layer}"


def stored_tensors(kind: str, row: int, layer: int, keys: set[str]) -> dict[str, str]:
    """The tensors of a shard (with keys ``keys``) that hold ``kind``'s maps of one example row and layer: the map
    itself, or for normed maps in the current layout their factors, as {"map" | "raw" and "norms": key}."""
    key = tensor_key(row, kind, layer)
    if kind != "normed" or key in keys:  # every other kind; normed maps of shards written before the factors
        return {"map": key}
    return {"raw": tensor_key(row, "raw", layer), "norms": tensor_key(row, COLUMN_NORMS, layer)}


def map_heads(kind: str, kept: list[list[int]]) -> list[list[int]]:
    """Per layer, the head ids a kind has maps for: the kept heads, or [LAYER_HEAD] in every layer for a
    layer-level kind (whose tensors are (1, T, T) whatever the mask)."""
    return [[LAYER_HEAD] for _ in kept] if kind in LAYER_KINDS else kept


def read_examples_file(path: Path) -> list[dict]:
    """Read complete index lines; a trailing partial line (a kill mid-append) is ignored."""
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


class ShardWriter:
    """Buffers finished examples and writes them as one safetensors shard plus index lines per flush.

    With ``background=True`` a flush hands the shard to a writer thread (the atomic write of the safetensors
    file, its sha256 and fsync, then the index lines) and returns at once, so the next chunk's forward pass runs
    meanwhile. At most one shard is in flight: a flush first waits for the previous one, so memory holds at most the
    shard being written and the one being filled. An error in the writer thread is raised in the caller's thread by the
    next :meth:`flush`, by :meth:`wait` or by :meth:`close`. Shards and their index lines are written by one thread,
    in order, exactly as without ``background``: a kill leaves the same resumable states (see the module docstring).

    Use it as a context manager: a normal exit closes it (writes what is buffered and waits); an exit by an
    exception waits for the shard in flight, so the folder is left as a synchronous writer would leave it, and
    drops what was buffered but never flushed.
    """

    def __init__(self, root: Path, dtype: str, start_index: int, background: bool = False):
        from safetensors.numpy import save_file  # imported here: only writers need it

        self._save_file = save_file
        self.root = root
        self.dtype = np.float16 if dtype == "float16" else np.float32
        self.next_index = start_index
        self.background = background
        self._tensors: dict[str, np.ndarray] = {}
        self._records: list[dict] = []
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        (root / MAPS_DIR).mkdir(parents=True, exist_ok=True)

    @property
    def pending(self) -> int:
        return len(self._records)

    def add(self, meta: dict, maps: dict[tuple[str, int], np.ndarray]) -> None:
        """``maps[(kind, layer)]`` is (heads kept, T, T) for this example, in the run's dtype; the normed maps'
        factor ``maps[(COLUMN_NORMS, layer)]`` is (heads kept, T), kept in float32."""
        row = len(self._records)
        for (kind, layer), arr in maps.items():
            dtype = np.float32 if kind == COLUMN_NORMS else self.dtype
            self._tensors[tensor_key(row, kind, layer)] = np.ascontiguousarray(arr, dtype=dtype)
        self._records.append({**meta, "row": row})

    def flush(self) -> None:
        """Write the buffered examples as the next shard (in the writer thread when ``background``)."""
        if not self._records:
            return
        job = (f"shard-{self.next_index:05d}.safetensors", self._tensors, self._records)
        self._tensors, self._records = {}, []
        self.next_index += 1
        if not self.background:
            self._write(*job)
            return
        self.wait()  # at most one shard in flight; raises the previous shard's error, if any
        self._thread = threading.Thread(target=self._run, args=job, name="attnpatterns-shard-writer")
        self._thread.start()

    def wait(self) -> None:
        """Wait for the shard in flight; raise the writer thread's error here, if it had one."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Write what is buffered and wait until every shard and index line is on disk."""
        self.flush()
        self.wait()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        self._tensors, self._records = {}, []
        try:
            self.wait()
        except BaseException as err:  # the exception already on its way matters more; keep this one beside it
            if hasattr(exc, "add_note"):  # Python >= 3.11; on 3.10 the caller's exception goes on alone
                exc.add_note(f"the shard writer had also failed: {err!r}")

    def _run(self, name: str, tensors: dict[str, np.ndarray], records: list[dict]) -> None:
        try:
            self._write(name, tensors, records)
        except BaseException as err:  # raised in the caller's thread by wait()
            self._error = err

    def _write(self, name: str, tensors: dict[str, np.ndarray], records: list[dict]) -> None:
        # safetensors writes the file straight from the arrays' memory, with Python's lock released (its
        # in-memory ``save`` builds the whole shard as one bytes object, a second copy made while holding the lock,
        # which stalls the forward pass in the other thread); the sha256 is then taken of the file as read back,
        # i.e. of exactly the bytes ``verify`` will hash. The index lines that carry it are appended only once the
        # shard is durably in place.
        def write(tmp: Path) -> tuple[str, int]:
            self._save_file(tensors, str(tmp))
            tensors.clear()  # the writer's own dict: free the arrays once they are in the file
            return file_sha256(tmp), tmp.stat().st_size

        sha256, size = atomic_write_file(self.root / MAPS_DIR / name, write)
        shard = {"shard": name, "shard_sha256": sha256, "shard_bytes": size}
        lines = "".join(json.dumps({**r, **shard}, ensure_ascii=False) + "\n" for r in records)
        with open(self.root / EXAMPLES_FILE, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


# -- integrity ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardDamage:
    """One damaged shard: its file name, what is wrong (:data:`MISSING`, ...), details, and the examples it holds."""

    shard: str
    problem: str
    detail: str
    example_ids: tuple[str, ...]

    def describe(self) -> str:
        return f"{MAPS_DIR}/{self.shard}: {self.problem} ({self.detail}); holds {_some_ids(self.example_ids)}"

    def to_dict(self) -> dict:
        return {"shard": self.shard, "problem": self.problem, "detail": self.detail,
                "example_ids": list(self.example_ids)}


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`MapRun.verify` found. ``ok`` when no shard is damaged and no finished example is missing."""

    root: Path
    n_shards: int
    n_examples: int
    damaged: tuple[ShardDamage, ...] = ()
    n_unhashed: int = 0  # shards whose index lines record no checksum (older runs): checked by parsing only
    missing_examples: int = 0  # a complete run whose index holds fewer examples than its manifest counts
    complete: bool = True

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing_examples

    @property
    def damaged_examples(self) -> list[str]:
        return [e for d in self.damaged for e in d.example_ids]

    def summary(self) -> str:
        """One line when ``ok``; else a line that says how to repair, then one line per damaged shard."""
        if self.ok:
            text = f"ok: {self.n_shards} shards, {self.n_examples} examples verified"
            if self.n_unhashed:
                text += f" ({self.n_unhashed} shards have no recorded checksum: checked by parsing only)"
            if not self.complete:
                text += "; the run is unfinished: rerun the same `attnpatterns extract` command to finish it"
            return text
        problems = []
        if self.damaged:
            problems.append(
                f"{len(self.damaged)} of {self.n_shards} shards damaged ({len(self.damaged_examples)} examples)"
            )
        if self.missing_examples:
            problems.append(f"{self.missing_examples} examples missing from {EXAMPLES_FILE}")
        head = (
            f"{self.root}: {' and '.join(problems)}; rerun the same `attnpatterns extract` command to repair it "
            "(only those examples are extracted again)."
        )
        return "\n".join([head] + ["  " + d.describe() for d in self.damaged])

    def to_dict(self) -> dict:
        return {"root": str(self.root), "ok": self.ok, "n_shards": self.n_shards, "n_examples": self.n_examples,
                "n_unhashed": self.n_unhashed, "missing_examples": self.missing_examples,
                "complete": self.complete, "damaged": [d.to_dict() for d in self.damaged]}


def _some_ids(ids: tuple[str, ...], show: int = 5) -> str:
    more = f" and {len(ids) - show} more" if len(ids) > show else ""
    return f"{len(ids)} example(s): {', '.join(ids[:show])}{more}"


def _by_shard(records: Iterable[ExampleRecord]) -> dict[str, list[ExampleRecord]]:
    groups: dict[str, list[ExampleRecord]] = {}
    for rec in records:
        groups.setdefault(rec.shard, []).append(rec)
    return dict(sorted(groups.items()))


def _check_bytes(path: Path, records: list[ExampleRecord]) -> tuple[str, str] | None:
    """Compare a shard with the size and sha256 its index lines record; None when it matches or none is recorded."""
    recorded = {(r.shard_sha256, r.shard_bytes) for r in records}
    if len(recorded) > 1:
        return CHECKSUM_MISMATCH, "its index lines record different checksums"
    sha256, size = recorded.pop()
    try:
        actual = path.stat().st_size
        if size is not None and actual < size:
            return TRUNCATED, f"{actual} of {size} bytes"
        if size is not None and actual != size:
            return CHECKSUM_MISMATCH, f"{actual} bytes where {size} were written"
        if sha256 is not None and file_sha256(path) != sha256:
            return CHECKSUM_MISMATCH, "its sha256 differs from the one recorded when it was written"
    except FileNotFoundError:
        return MISSING, "no such file"
    except OSError as err:
        return UNREADABLE, str(err)
    return None


def _check_contents(
    path: Path, records: list[ExampleRecord], kept: list[list[int]], kinds: Iterable[str]
) -> tuple[str, str] | None:
    """Whether the shard parses and holds, for each of its examples, every (kind, layer) tensor at the right shape.

    Reads only the shard's header: cheap next to the checksum.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            keys = set(handle.keys())
            for rec in records:
                for kind in kinds:
                    for layer, ids in enumerate(map_heads(kind, kept)):
                        if not ids:
                            continue
                        T = rec.n_tokens
                        for part, key in stored_tensors(kind, rec.row, layer, keys).items():
                            if key not in keys:
                                return UNREADABLE, f"no tensor {key!r} for example {rec.example_id!r}"
                            shape = list(handle.get_slice(key).get_shape())
                            want = [len(ids), T] if part == "norms" else [len(ids), T, T]
                            if shape != want:
                                return UNREADABLE, f"tensor {key!r} has shape {shape}, not {want}"
    except (SafetensorError, OSError) as err:
        return UNREADABLE, f"safetensors cannot read it: {err}"
    return None


def check_shards(
    root: Path, records: Iterable[ExampleRecord], kept: list[list[int]], kinds: Iterable[str]
) -> list[ShardDamage]:
    """The damaged shards among those ``records`` point to (size and sha256 first, then header and tensors)."""
    kinds = tuple(kinds)
    damaged = []
    for name, recs in _by_shard(records).items():
        path = root / MAPS_DIR / name
        found = _check_bytes(path, recs) or _check_contents(path, recs, kept, kinds)
        if found is not None:
            damaged.append(ShardDamage(name, *found, tuple(r.example_id for r in recs)))
    return damaged


# -- resume --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResumeState:
    """What is left of a run after :func:`prepare_resume`: finished ids, the next shard's number, what was removed."""

    done: set[str]
    next_shard: int
    repaired: tuple[ShardDamage, ...] = ()


def _write_index(root: Path, lines: list[dict]) -> None:
    atomic_write_text(root / EXAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))


def prepare_resume(root: Path, kept: list[list[int]], kinds: Iterable[str]) -> ResumeState:
    """Make an unfinished or damaged run ready to continue; damaged shards' examples are left to extract again.

    Drops a trailing partial index line, temporary files, shards no index line points to, and damaged shards
    (see :func:`check_shards`) together with their index lines. The index is rewritten first and files deleted
    after: a kill in between only leaves shards no line points to, which the next resume drops.
    """
    lines = read_examples_file(root / EXAMPLES_FILE)
    damaged = check_shards(root, [ExampleRecord.from_dict(d) for d in lines], kept, kinds)
    lost = {d.shard for d in damaged}
    lines = [d for d in lines if d["shard"] not in lost]
    if (root / EXAMPLES_FILE).is_file():  # also drops a trailing partial line, so that appends stay well-formed
        _write_index(root, lines)
    referenced = {d["shard"] for d in lines}
    maps_dir = root / MAPS_DIR
    indices = [-1]
    if maps_dir.is_dir():
        for f in maps_dir.iterdir():
            if f.name.startswith("."):
                f.unlink()  # a temp file from a kill mid-write
            elif f.name not in referenced:
                f.unlink()  # damaged, or written but its index lines never were: recompute those examples
            else:
                indices.append(int(f.stem.split("-")[1]))
    return ResumeState({str(d["example_id"]) for d in lines}, max(indices) + 1, tuple(damaged))


def order_index(root: Path, example_ids: Iterable[str]) -> None:
    """Rewrite the index in the order of ``example_ids`` when a resume or repair left it otherwise."""
    lines = read_examples_file(root / EXAMPLES_FILE)
    pos = {str(e): i for i, e in enumerate(example_ids)}
    ordered = sorted(lines, key=lambda d: pos.get(str(d["example_id"]), len(pos)))
    if ordered != lines:
        _write_index(root, ordered)


class MapRun:
    """Read access to an extraction run: any map in one call, or lazy iteration over all of them."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise RunError(f"{self.root} {what}; pass the folder written by `attnpatterns extract -o`.")
        manifest = read_manifest(self.root)
        if manifest is None:
            what = "is unreadable" if (self.root / MANIFEST_FILE).exists() else "is missing"
            raise RunError(
                f"{self.root} is not an extraction run ({MANIFEST_FILE} {what}); run `attnpatterns extract`."
            )
        self.manifest: dict = manifest
        if self.manifest.get("run_type") != RUN_TYPE:
            raise RunError(
                f"{self.root} holds a {self.manifest.get('run_type')!r} run, not an extraction run; "
                "pass the folder written by `attnpatterns extract`."
            )
        heads = read_json(self.root / HEADS_FILE)
        if not isinstance(heads, dict) or not isinstance(heads.get("layers"), list):
            raise RunError(
                f"{self.root / HEADS_FILE} is missing or unreadable; rerun the same `attnpatterns extract` command "
                "to repair the run."
            )
        self._kept: list[list[int]] = [list(x) for x in heads["layers"]]
        self.kinds: tuple[str, ...] = tuple(self.manifest["config"]["kinds"])
        self.examples: list[ExampleRecord] = [
            ExampleRecord.from_dict(d) for d in read_examples_file(self.root / EXAMPLES_FILE)
        ]
        self._by_id = {e.example_id: e for e in self.examples}
        self._shards = _by_shard(self.examples)
        self._checked: set[str] = set()  # shards whose size and checksum matched since this object was made
        self._open = lru_cache(maxsize=4)(self._open_shard)

    # -- description ---------------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def is_complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    @property
    def num_layers(self) -> int:
        return len(self._kept)

    @property
    def num_heads(self) -> int:
        return int(self.manifest["model"]["num_heads"])

    @property
    def heads(self) -> list[tuple[int, int]]:
        """(layer, original head id) of every kept head: the per-head kinds' maps."""
        return [(layer, h) for layer, ids in enumerate(self._kept) for h in ids]

    def map_heads(self, kind: str) -> list[tuple[int, int]]:
        """(layer, head) of every map a kind has per example: :attr:`heads`, or (layer, -1) per layer for a
        layer-level kind."""
        return [(layer, h) for layer, ids in enumerate(map_heads(kind, self._kept)) for h in ids]

    def n_maps(self, kinds: Iterable[str] | None = None) -> int:
        """Number of maps of ``kinds`` (default: all of the run's) over all examples."""
        kinds = self.kinds if kinds is None else [k for k in kinds if k in self.kinds]
        return len(self.examples) * sum(len(self.map_heads(k)) for k in kinds)

    def example(self, example_id: str) -> ExampleRecord:
        try:
            return self._by_id[str(example_id)]
        except KeyError:
            raise RunError(f"example {example_id!r} is not in {self.root} ({len(self.examples)} examples).") from None

    def __len__(self) -> int:
        return len(self.examples)

    # -- access ----------------------------------------------------------------------------------------------
    def verify(self) -> VerifyResult:
        """Check every shard against its recorded size and sha256, and that it parses and holds its examples' maps.

        Reads each shard once (the checksum), so it costs about what reading every map once does. Shards written
        before checksums were recorded are checked by parsing only. Rerunning the same ``attnpatterns extract``
        command removes the damaged shards and extracts their examples again.
        """
        damaged = check_shards(self.root, self.examples, self._kept, self.kinds)
        self._checked.update(set(self._shards) - {d.shard for d in damaged})
        expected = int(self.manifest.get("n_examples", len(self.examples)))
        return VerifyResult(
            root=self.root,
            n_shards=len(self._shards),
            n_examples=len(self.examples),
            damaged=tuple(damaged),
            n_unhashed=sum(1 for recs in self._shards.values() if recs[0].shard_sha256 is None),
            missing_examples=max(0, expected - len(self.examples)) if self.is_complete else 0,
            complete=self.is_complete,
        )

    def _damaged(self, name: str, problem: str, detail: str) -> DamagedShardError:
        damage = ShardDamage(name, problem, detail, tuple(r.example_id for r in self._shards.get(name, [])))
        return DamagedShardError(
            f"{self.root / MAPS_DIR / name} is damaged: {damage.problem} ({damage.detail}); it holds "
            f"{_some_ids(damage.example_ids)}. Rerun the same `attnpatterns extract` command (same -o {self.root}) "
            f"to extract only those examples again; `attnpatterns verify {self.root}` lists every damaged shard."
        )

    def _open_shard(self, name: str):
        from safetensors import SafetensorError, safe_open

        path = self.root / MAPS_DIR / name
        if name not in self._checked:  # one read of the file, on first open: a changed byte is caught here
            found = _check_bytes(path, self._shards[name])
            if found is not None:
                raise self._damaged(name, *found)
            self._checked.add(name)
        try:
            handle = safe_open(str(path), framework="np")
            return handle, set(handle.keys())
        except (SafetensorError, OSError) as err:
            raise self._damaged(name, UNREADABLE, f"safetensors cannot read it: {err}") from None

    def _layer_block(
        self, rec: ExampleRecord, kind: str, layer: int, pos: int | list[int] | None = None
    ) -> np.ndarray:
        """One layer's maps of ``kind`` for one example as float32: (heads, T, T); only the head at position ``pos``
        (T, T) for an int, only the heads at those positions (k, T, T) for a list. Normed maps are multiplied back
        from their stored factors (the module docstring)."""
        from safetensors import SafetensorError

        handle, keys = self._open(rec.shard)
        try:
            parts = {part: handle.get_tensor(key) for part, key in stored_tensors(kind, rec.row, layer, keys).items()}
        except SafetensorError as err:
            raise self._damaged(rec.shard, UNREADABLE, str(err)) from None
        if pos is not None:  # some heads: convert (and multiply) only their maps
            parts = {part: arr[pos] for part, arr in parts.items()}
        if "map" in parts:
            return np.asarray(parts["map"], dtype=np.float32)
        norms = np.asarray(parts["norms"], dtype=np.float32)
        return np.asarray(parts["raw"], dtype=np.float32) * norms[..., None, :]  # column j scaled by ‖f_h(x_j)‖

    def get_map(self, example_id: str, layer: int, head: int, kind: str = "raw") -> np.ndarray:
        """The (T, T) float32 map of ``head`` (original id) in ``layer`` for one example.

        A layer-level kind has one map per layer: pass head ``LAYER_HEAD`` (-1) or None for it.
        """
        rec = self.example(example_id)
        if kind not in self.kinds:
            raise RunError(f"this run has no {kind!r} maps (it has {', '.join(self.kinds)}).")
        if not 0 <= layer < self.num_layers:
            raise RunError(f"layer {layer} is out of range; the model has layers 0..{self.num_layers - 1}.")
        if kind in LAYER_KINDS:
            if head not in (LAYER_HEAD, None):
                raise RunError(
                    f"{kind} maps are per layer, not per head; ask for head {LAYER_HEAD} (the layer's map)."
                )
            return self._layer_block(rec, kind, layer, 0)
        if head not in self._kept[layer]:
            raise RunError(f"head {head} of layer {layer} has no maps in this run (masked, or out of range).")
        pos = self._kept[layer].index(head)
        return self._layer_block(rec, kind, layer, pos)

    def iter_maps(
        self,
        kinds: Iterable[str] | None = None,
        layers: Iterable[int] | None = None,
        heads: Iterable[int] | None = None,
        examples: Iterable[str] | None = None,
    ) -> Iterator[MapRecord]:
        """Yield maps lazily, example by example (one shard open at a time).

        A layer-level kind yields one map per layer with head ``LAYER_HEAD`` (-1); ``heads`` filters it like a
        head id (so ``heads=[-1]`` selects exactly the layer-level maps).
        """
        kinds = tuple(kinds) if kinds is not None else self.kinds
        layers = list(layers) if layers is not None else list(range(self.num_layers))
        head_filter = set(heads) if heads is not None else None
        recs = [self.example(e) for e in examples] if examples is not None else self.examples
        for rec in recs:
            for kind in kinds:
                per_layer = map_heads(kind, self._kept)
                for layer in layers:
                    ids = per_layer[layer]
                    wanted = [(pos, head) for pos, head in enumerate(ids) if head_filter is None or head in head_filter]
                    if not wanted:  # nothing asked for in this layer: its tensors are not read
                        continue
                    # read the layer's block once; convert (and, normed, multiply) only the heads asked for
                    block = self._layer_block(rec, kind, layer, None if len(wanted) == len(ids) else
                                              [pos for pos, _ in wanted])
                    for (_, head), array in zip(wanted, block):
                        yield MapRecord(rec.example_id, layer, head, kind, array, rec.tokens, rec.segment_ids)

    def index(self):
        """One row per map: example_id, n_tokens, layer, head (original id; -1 for a layer-level kind), kind."""
        import pandas as pd

        rows = [
            (e.example_id, e.n_tokens, layer, head, kind)
            for e in self.examples
            for kind in self.kinds
            for layer, head in self.map_heads(kind)
        ]
        return pd.DataFrame(rows, columns=["example_id", "n_tokens", "layer", "head", "kind"])


def open_run(path: Path | str) -> MapRun:
    """Open an extraction run folder for reading."""
    return MapRun(path)

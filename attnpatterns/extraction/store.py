"""The on-disk layout of an extraction run, its chunked writer and its lazy reader.

A run folder holds::

    manifest.json          what made the run (model, revision, masks, inputs, versions, command, seed, device)
    heads.json             per layer, the ORIGINAL ids of the heads that have maps (masked heads have none)
    examples.jsonl         one line per finished example: id, texts, tokens, segment ids, shard and row
    maps/shard-NNNNN.safetensors
                           one tensor per (example row, kind, layer) named "<row>/<kind>/<layer>", shape
                           (heads kept, T, T), float16 by default; T = the example's real tokens (no padding)

Together ``examples.jsonl`` and ``heads.json`` are the index (example id, tokens, layer, original head id, kind);
:meth:`MapRun.index` expands them into one row per map. Shards are written whole and atomically, and an example's
index line is appended only after its shard is on disk, so a killed run never leaves a half-written map visible:
on resume, shards that no index line points to are discarded and their examples recomputed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from attnpatterns.constants import MANIFEST_FILE
from attnpatterns.runfolder import atomic_write_text, write_json  # noqa: F401  (write_json: re-exported)

EXAMPLES_FILE = "examples.jsonl"
HEADS_FILE = "heads.json"
MAPS_DIR = "maps"
RUN_TYPE = "extraction"


class RunError(ValueError):
    """A folder is not a usable extraction run, or a request names a map the run does not hold."""


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


def tensor_key(row: int, kind: str, layer: int) -> str:
    return f"{row}/{kind}/{layer}"


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
    """Buffers finished examples and writes them as one safetensors shard plus index lines per flush."""

    def __init__(self, root: Path, dtype: str, start_index: int):
        from safetensors.numpy import save_file  # imported here: only writers need it

        self._save_file = save_file
        self.root = root
        self.dtype = np.float16 if dtype == "float16" else np.float32
        self.next_index = start_index
        self._tensors: dict[str, np.ndarray] = {}
        self._records: list[dict] = []
        (root / MAPS_DIR).mkdir(parents=True, exist_ok=True)

    @property
    def pending(self) -> int:
        return len(self._records)

    def add(self, meta: dict, maps: dict[tuple[str, int], np.ndarray]) -> None:
        """``maps[(kind, layer)]`` is (heads kept, T, T) for this example."""
        row = len(self._records)
        for (kind, layer), arr in maps.items():
            self._tensors[tensor_key(row, kind, layer)] = np.ascontiguousarray(arr, dtype=self.dtype)
        self._records.append({**meta, "row": row})

    def flush(self) -> None:
        if not self._records:
            return
        name = f"shard-{self.next_index:05d}.safetensors"
        path = self.root / MAPS_DIR / name
        tmp = path.with_name(f".{name}.tmp")
        self._save_file(self._tensors, str(tmp))
        os.replace(tmp, path)
        lines = "".join(json.dumps({**r, "shard": name}, ensure_ascii=False) + "\n" for r in self._records)
        with open(self.root / EXAMPLES_FILE, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.next_index += 1
        self._tensors = {}
        self._records = []


def prepare_resume(root: Path) -> tuple[set[str], int]:
    """Return (ids of finished examples, next shard index) and drop shards no index line points to."""
    records = read_examples_file(root / EXAMPLES_FILE)
    # Rewrite the index without a trailing partial line so that appends stay well-formed.
    if (root / EXAMPLES_FILE).is_file():
        atomic_write_text(
            root / EXAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        )
    referenced = {r["shard"] for r in records}
    maps_dir = root / MAPS_DIR
    indices = [-1]
    if maps_dir.is_dir():
        for f in maps_dir.iterdir():
            if f.name.startswith("."):
                f.unlink()  # a temp file from a kill mid-write
            elif f.name not in referenced:
                f.unlink()  # written, but its index lines never were: recompute those examples
            else:
                indices.append(int(f.stem.split("-")[1]))
    return {str(r["example_id"]) for r in records}, max(indices) + 1


class MapRun:
    """Read access to an extraction run: any map in one call, or lazy iteration over all of them."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        manifest_path = self.root / MANIFEST_FILE
        if not manifest_path.is_file():
            raise RunError(f"{self.root} is not an extraction run (no {MANIFEST_FILE}); run `attnpatterns extract`.")
        self.manifest: dict = json.loads(manifest_path.read_text(encoding="utf-8"))
        if self.manifest.get("run_type") != RUN_TYPE:
            raise RunError(
                f"{self.root} holds a {self.manifest.get('run_type')!r} run, not an extraction run; "
                "pass the folder written by `attnpatterns extract`."
            )
        heads = json.loads((self.root / HEADS_FILE).read_text(encoding="utf-8"))
        self._kept: list[list[int]] = [list(x) for x in heads["layers"]]
        self.kinds: tuple[str, ...] = tuple(self.manifest["config"]["kinds"])
        self.examples: list[ExampleRecord] = [
            ExampleRecord.from_dict(d) for d in read_examples_file(self.root / EXAMPLES_FILE)
        ]
        self._by_id = {e.example_id: e for e in self.examples}
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
        return [(layer, h) for layer, ids in enumerate(self._kept) for h in ids]

    def example(self, example_id: str) -> ExampleRecord:
        try:
            return self._by_id[str(example_id)]
        except KeyError:
            raise RunError(f"example {example_id!r} is not in {self.root} ({len(self.examples)} examples).") from None

    def __len__(self) -> int:
        return len(self.examples)

    # -- access ----------------------------------------------------------------------------------------------
    def _open_shard(self, name: str):
        from safetensors import safe_open

        return safe_open(str(self.root / MAPS_DIR / name), framework="np")

    def _layer_block(self, rec: ExampleRecord, kind: str, layer: int) -> np.ndarray:
        return self._open(rec.shard).get_tensor(tensor_key(rec.row, kind, layer))

    def get_map(self, example_id: str, layer: int, head: int, kind: str = "raw") -> np.ndarray:
        """The (T, T) float32 map of ``head`` (original id) in ``layer`` for one example."""
        rec = self.example(example_id)
        if kind not in self.kinds:
            raise RunError(f"this run has no {kind!r} maps (it has {', '.join(self.kinds)}).")
        if not 0 <= layer < self.num_layers:
            raise RunError(f"layer {layer} is out of range; the model has layers 0..{self.num_layers - 1}.")
        if head not in self._kept[layer]:
            raise RunError(f"head {head} of layer {layer} has no maps in this run (masked, or out of range).")
        pos = self._kept[layer].index(head)
        return np.asarray(self._layer_block(rec, kind, layer)[pos], dtype=np.float32)

    def iter_maps(
        self,
        kinds: Iterable[str] | None = None,
        layers: Iterable[int] | None = None,
        heads: Iterable[int] | None = None,
        examples: Iterable[str] | None = None,
    ) -> Iterator[MapRecord]:
        """Yield maps lazily, example by example (one shard open at a time)."""
        kinds = tuple(kinds) if kinds is not None else self.kinds
        layers = list(layers) if layers is not None else list(range(self.num_layers))
        head_filter = set(heads) if heads is not None else None
        recs = [self.example(e) for e in examples] if examples is not None else self.examples
        for rec in recs:
            for kind in kinds:
                for layer in layers:
                    ids = self._kept[layer]
                    if not ids:
                        continue
                    block = self._layer_block(rec, kind, layer)
                    for pos, head in enumerate(ids):
                        if head_filter is not None and head not in head_filter:
                            continue
                        yield MapRecord(
                            rec.example_id, layer, head, kind, np.asarray(block[pos], np.float32),
                            rec.tokens, rec.segment_ids,
                        )

    def index(self):
        """One row per map: example_id, n_tokens, layer, head (original id), kind (a pandas DataFrame)."""
        import pandas as pd

        rows = [
            (e.example_id, e.n_tokens, layer, head, kind)
            for e in self.examples
            for kind in self.kinds
            for layer, head in self.heads
        ]
        return pd.DataFrame(rows, columns=["example_id", "n_tokens", "layer", "head", "kind"])


def open_run(path: Path | str) -> MapRun:
    """Open an extraction run folder for reading."""
    return MapRun(path)

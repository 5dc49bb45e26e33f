"""``extract_maps``: run a model over inputs and write every kept head's raw and normed maps (and, on request, the
layer-level context-mixing maps: rollout, resln, alti, valuezero) to a run folder.

Work goes in chunks (one safetensors shard each), so memory stays flat however many examples there are, and a
killed run resumes where it stopped: rerun with the same configuration and finished examples are skipped. The rerun
also verifies the shards already there (size and sha256, see :meth:`MapRun.verify`), complete run or not: damaged ones
are removed with a warning and only their examples extracted again. A folder that holds a *different* run (another
model, inputs, masks, kinds or dtype) is never overwritten unless asked.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from attnpatterns.constants import HEAD_KINDS, MAP_KINDS
from attnpatterns.data.records import InputError, TextExample
from attnpatterns.extraction.maps import MapCapture
from attnpatterns.extraction.store import (
    COLUMN_NORMS,
    HEADS_FILE,
    RUN_TYPE,
    MapRun,
    RunError,
    ShardWriter,
    order_index,
    prepare_resume,
)
from attnpatterns.masking.files import check_head_mask, check_mlp_mask
from attnpatterns.models.adapter import model_device
from attnpatterns.models.identity import model_identity
from attnpatterns.models.loading import LoadedModel
from attnpatterns.runfolder import fingerprint as _fingerprint
from attnpatterns.runfolder import open_run_folder, write_json

DTYPES = ("float16", "float32")


@dataclass
class ExtractionConfig:
    """Everything that determines the maps of a run (and so its fingerprint)."""

    kinds: tuple[str, ...] = HEAD_KINDS  # any of MAP_KINDS; the layer-level ones on request
    dtype: str = "float16"
    max_length: int = 128
    batch_size: int = 16
    chunk_size: int = 64  # examples per shard
    inputs: dict = field(default_factory=dict)  # how the inputs were obtained (file + hash, task/split, ...)

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        if not self.kinds or any(k not in MAP_KINDS for k in self.kinds):
            raise ValueError(f"kinds must be a non-empty subset of {MAP_KINDS}, got {self.kinds}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.max_length < 4:
            raise ValueError("max_length must be at least 4 tokens")
        if self.batch_size < 1 or self.chunk_size < 1:
            raise ValueError("batch_size and chunk_size must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


def extraction_fingerprint(model: LoadedModel, config: ExtractionConfig, head_mask, mlp_mask, examples) -> str:
    """A hash of what decides the content of the run (not how fast it is made: batch and chunk sizes excluded).

    A local model folder is identified by its weights too (:func:`~attnpatterns.models.identity.model_identity`'s
    content hash), as fine-tuning and pruning runs are: new weights saved into the same folder make another run, so
    a finished run is not handed back and an unfinished one not resumed with maps of two different models.
    """
    model_ident = [model.path, model.revision, type(model.model).__name__]
    weights = model_identity(model).get("weights_sha256")  # local folders only (hub and bundled: the revision)
    ident = {
        "model": model_ident + ([weights] if weights else []),
        "kinds": list(config.kinds),
        "dtype": config.dtype,
        "max_length": config.max_length,
        "head_mask": None if head_mask is None else np.asarray(head_mask).tolist(),
        "mlp_mask": None if mlp_mask is None else np.asarray(mlp_mask).tolist(),
        "inputs": hashlib.sha256(
            json.dumps([e.to_dict() for e in examples], ensure_ascii=False).encode()
        ).hexdigest(),
    }
    return _fingerprint(ident)


def examples_digest(examples: Sequence[TextExample]) -> str:
    """sha256 of the examples' ids and texts (not labels), in order: what tells two runs' inputs apart when they
    are compared (e.g. the full model's and the super-survivors' maps of one task)."""
    texts = [[e.example_id, e.text_a, e.text_b] for e in examples]
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()


def max_tokens(model) -> int:
    """The longest input the model's position embeddings allow: ``max_position_embeddings``, less the offset of
    RoBERTa-style embeddings (XLM-R, CamemBERT, ...), whose positions start after ``padding_idx`` (514 - 2 = 512)."""
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    offset = padding_idx + 1 if isinstance(padding_idx, int) else 0
    return int(getattr(model.config, "max_position_embeddings", 512)) - offset


def _segments(enc, j: int, n_real: int) -> list[int]:
    """Segment of every real token: 0 for the first text, 1 for the second; specials join the segment before."""
    try:
        seq = enc.sequence_ids(j)[:n_real]  # fast tokenizers know which text each token came from
    except (ValueError, AttributeError):
        seq = enc["token_type_ids"][j, :n_real].tolist() if "token_type_ids" in enc else [0] * n_real
    out, current = [], 0
    for s in seq:
        if s is not None:
            current = s
        out.append(current)
    return out


def tokenize(tokenizer, examples: Sequence[TextExample], max_length: int):
    """Tokenize with truncation to ``max_length``, padded on the right, and report which examples were truncated."""
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if any(e.is_pair for e in examples) else None
    if b is not None and not all(e.is_pair for e in examples):
        raise InputError("a batch mixes single texts and sentence pairs; keep one kind per input file.")
    # Padded on the right whatever the tokenizer's own padding_side (some checkpoints save "left"): maps, token lists
    # and value zeroing's replays are cropped to each example's first n positions. Returned as numpy arrays, made
    # tensors sharing their memory: the same int64 tensors as return_tensors="pt", whose conversion walks every id in
    # Python first (about half the tokenising time; benchmarks/RESULTS.md, "Extraction", session 17).
    enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=True, padding_side="right",
                    return_tensors="np")
    for key, value in enc.items():
        enc[key] = torch.from_numpy(np.asarray(value, dtype=np.int64))
    # Truncation cuts a text to exactly max_length tokens, so only the examples that fill max_length can have been
    # truncated: only those are tokenised again, untruncated, to tell (most batches need no second call).
    lengths = enc["attention_mask"].sum(dim=1).tolist()
    full = [j for j, n in enumerate(lengths) if n >= max_length]
    truncated = [False] * len(examples)
    if full:
        again = tokenizer([a[j] for j in full], None if b is None else [b[j] for j in full], truncation=False,
                          add_special_tokens=True)
        for j, ids in zip(full, again["input_ids"]):
            truncated[j] = len(ids) > max_length
    _check_every_text_has_tokens(enc, examples, truncated)
    return enc, truncated


def _check_every_text_has_tokens(enc, examples: Sequence[TextExample], truncated: list[bool]) -> None:
    """A text the tokenizer turns into nothing (spaces, control or zero-width characters) would be stored as a map of
    special tokens only, with segment ids the model was not given: refuse it by name. Needs a fast tokenizer's
    encodings (which token came from which text); a truncation that leaves a second text no tokens is warned of."""
    if not enc.encodings:
        return
    for j, ex in enumerate(examples):
        seq = set(enc.sequence_ids(j))
        which = "text" if 0 not in seq else "second text" if ex.is_pair and 1 not in seq and not truncated[j] else None
        if which:
            raise InputError(
                f"example {ex.example_id!r}: its {which} gives no tokens with this tokenizer (only spaces, control or "
                "zero-width characters?). Fix or drop it; if a run folder was started, rerun with --overwrite."
            )


def extract_maps(
    model: LoadedModel,
    examples: Sequence[TextExample],
    out: Path | str,
    config: ExtractionConfig | None = None,
    head_mask: np.ndarray | None = None,
    mlp_mask: np.ndarray | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    manifest_extra: dict | None = None,
) -> MapRun:
    """Extract maps for ``examples`` into ``out`` and return the finished :class:`MapRun`.

    ``progress`` is called with the number of examples finished since the last call (the CLI feeds a bar).
    Texts longer than ``config.max_length`` tokens are truncated (longest-first for pairs) with a warning; the
    manifest and each example's index line record the truncation.
    """
    config = config or ExtractionConfig()
    out = Path(out)
    if not examples:
        raise InputError("there are no examples to extract; check the input file or --limit.")
    ids = [e.example_id for e in examples]
    if len(set(ids)) != len(ids):
        raise InputError("example ids are not unique; give every example its own id (--id-column).")
    model_max = max_tokens(model.model)
    if config.max_length > model_max:
        raise InputError(
            f"--max-length {config.max_length} is longer than the model's maximum ({model_max} positions); "
            f"use --max-length {model_max} or less."
        )
    L, H = model.adapter.num_layers, model.adapter.num_heads
    if head_mask is not None:
        head_mask = check_head_mask(head_mask, L, H)
    if mlp_mask is not None:
        mlp_mask = check_mlp_mask(mlp_mask, L)
    fp = extraction_fingerprint(model, config, head_mask, mlp_mask, examples)
    folder = open_run_folder(out, RUN_TYPE, fp, overwrite, resume=True)
    resuming = folder.state != "new"  # complete (verified below) or unfinished: this very run
    if resuming:
        try:
            finished = MapRun(out)
        except RunError:  # e.g. heads.json lost: the resume below rewrites it
            finished = None
        if finished and finished.is_complete and len(finished) == len(examples) and finished.verify().ok:
            return finished  # the same run, complete and undamaged: nothing to do, nothing rewritten
    out.mkdir(parents=True, exist_ok=True)

    # normed maps are stored as their factors (raw map and column norms; see store.py): half the bytes
    capture = MapCapture(model.model, config.kinds, head_mask, mlp_mask, normed_maps=False)
    write_json(out / HEADS_FILE, {"layers": capture.kept})
    # "running" before any shard or index line is touched: a kill during a repair must not leave "complete" behind
    # (a resumed run keeps its creation time and counts the resume: RunFolder.start)
    previous = folder.previous or {}
    manifest = folder.start({
        **(manifest_extra or {}),
        "model": model.describe(),
        "config": config.to_dict(),
        "head_mask": None if head_mask is None else head_mask.tolist(),
        "mlp_mask": None if mlp_mask is None else mlp_mask.tolist(),
        "device": str(model_device(model.model)),
        "n_examples": len(examples),
        "examples_sha256": examples_digest(examples),
        **({"repaired_shards": previous["repaired_shards"]} if previous.get("repaired_shards") else {}),
    })
    done: set[str] = set()
    next_shard = 0
    if resuming:
        state = prepare_resume(out, capture.kept, config.kinds)
        done, next_shard = state.done, state.next_shard
        if state.repaired:
            manifest["repaired_shards"] = manifest.get("repaired_shards", []) + [d.describe() for d in state.repaired]
            warnings.warn(
                f"{len(state.repaired)} damaged shard(s) in {out} were removed and their examples are extracted "
                "again:\n" + "\n".join("  " + d.describe() for d in state.repaired),
                stacklevel=2,
            )

    todo = [e for e in examples if e.example_id not in done]
    if progress and done:
        progress(len(examples) - len(todo))
    n_truncated = 0
    # Each chunk's shard is written by a background thread while the next chunk's forward pass runs; leaving the
    # block waits for it (and raises its error, if any), so every shard is on disk before the run is marked complete.
    with ShardWriter(out, config.dtype, next_shard, background=True) as writer, capture, torch.inference_mode():
        for start in range(0, len(todo), config.chunk_size):
            chunk = todo[start : start + config.chunk_size]
            n_truncated += _process_chunk(model, capture, chunk, config, writer, progress)
            writer.flush()
    if n_truncated:
        warnings.warn(
            f"{n_truncated} example(s) were longer than --max-length {config.max_length} tokens and were "
            "truncated (longest-first for pairs); raise --max-length to keep them whole.",
            stacklevel=2,
        )
    if resuming:  # resumed and repaired examples were appended last: restore the order of the inputs
        order_index(out, [e.example_id for e in examples])
    folder.finish(n_truncated_this_session=n_truncated)
    return MapRun(out)


def _batches(chunk: Sequence[TextExample], batch_size: int) -> list[list[int]]:
    """Batches of indices into ``chunk``: singles and pairs apart, similar lengths together (little padding)."""
    def key(i: int) -> tuple[bool, int]:
        return chunk[i].is_pair, len(chunk[i].text_a) + len(chunk[i].text_b or "")

    order = sorted(range(len(chunk)), key=key)
    batches: list[list[int]] = []
    for i in order:
        if not batches or len(batches[-1]) == batch_size or chunk[batches[-1][0]].is_pair != chunk[i].is_pair:
            batches.append([])
        batches[-1].append(i)
    return batches


def _process_chunk(model, capture, chunk, config, writer, progress) -> int:
    results: dict[int, tuple[dict, dict]] = {}
    device = model_device(model.model)
    store_dtype = getattr(torch, config.dtype)  # float16 or float32, as the writer stores them
    n_truncated = 0
    # the chunk's batches are tokenised before its first forward pass, not between forward passes: the same calls
    # and tensors, but torch's threads then run the forward passes back to back (benchmarks/RESULTS.md, "Extraction")
    encoded = [(idx, *tokenize(model.tokenizer, [chunk[i] for i in idx], config.max_length))
               for idx in _batches(chunk, config.batch_size)]
    for idx, enc, truncated in encoded:
        n_truncated += sum(truncated)
        inputs = {k: v.to(device) for k, v in enc.items()}
        layers = capture.run(**inputs)  # the forward pass stops once the last layer's maps are captured
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        tokens = enc.encodings  # a fast tokenizer's encodings hold each token's string already (None otherwise)
        # one cast per layer and kind to the stored dtype (torch rounds float32 -> float16 exactly as numpy does);
        # the normed maps' column norms stay float32
        per_layer = {
            (kind, layer): lm.maps[kind].to(device="cpu", dtype=store_dtype).numpy()
            for layer, lm in enumerate(layers)
            for kind in lm.maps
        }
        per_layer.update({
            (COLUMN_NORMS, layer): lm.column_norms.to(device="cpu", dtype=torch.float32).numpy()
            for layer, lm in enumerate(layers)
            if lm.column_norms is not None
        })
        for j, i in enumerate(idx):
            n = int(lengths[j])
            ex = chunk[i]
            meta = {
                "example_id": ex.example_id,
                "text_a": ex.text_a,
                "text_b": ex.text_b,
                "tokens": (tokens[j].tokens[:n] if tokens
                           else model.tokenizer.convert_ids_to_tokens(enc["input_ids"][j, :n].tolist())),
                "segment_ids": _segments(enc, j, n),
                "n_tokens": n,
                "truncated": bool(truncated[j]),
            }
            # crop to real tokens, and copy now: a view would keep the whole padded batch alive until the flush
            maps = {key: arr[j, :, :n, :n].copy() if arr.ndim == 4 else arr[j, :, :n].copy()
                    for key, arr in per_layer.items()}
            results[i] = (meta, maps)
    for i in range(len(chunk)):
        writer.add(*results[i])
    if progress:
        progress(len(chunk))
    return n_truncated

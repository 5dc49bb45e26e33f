"""Load the inputs of the comparison: classification tables and survivors, and check that they fit together.

A *pattern table* is what ``attnpatterns classify`` writes for one extraction run: one row per map (example,
layer, original head id, kind) with its predicted pattern type, next to a manifest that carries the extraction
run's manifest (model, head mask, ...). *Survivors* are what ``attnpatterns survivors`` writes: the heads kept
by pruning in every seed, with the survival frequency and Fleiss' kappa
(:class:`attnpatterns.pruning.survivors.Survivors`, the one type that writes and reads them).

The comparison is only meaningful when the tables and the survivors describe the same model, so this module
refuses mismatches loudly: a different head grid, a "full model" table from a masked run, a "super-survivors"
table extracted with a mask other than the super-survivor mask, tables of one weights condition from two
different models, or tables over different example sets. Every error says what to do about it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from attnpatterns.constants import (
    CLASSIFICATIONS_FILE,
    LAYER_HEAD,
    LAYER_KINDS,
    MANIFEST_FILE,
    MAP_KINDS,
    PATTERN_TYPES,
    SUPER_HEAD_MASK_FILE,
    SUPER_MLP_MASK_FILE,
    SURVIVORS_FILE,
)
from attnpatterns.data.records import InputError
from attnpatterns.pruning.survivors import Survivors, load_survivors  # noqa: F401 (the comparison's input)

#: Columns a classification table must have; the five ``p_<type>`` columns are optional here.
REQUIRED_COLUMNS: tuple[str, ...] = ("example_id", "layer", "head", "kind", "label")

Head = tuple[int, int]  # (layer, original head id)


#: An input file is missing, malformed, or does not match the other inputs; the message says how to fix it. The
#: project's one input error, so that :class:`Survivors` (read by pruning and analysis alike) raises it too.
AnalysisInputError = InputError


# ------------------------------------------------------------------------------------------------------------
# Pattern tables
# ------------------------------------------------------------------------------------------------------------


@dataclass
class PatternTable:
    """The pattern labels of every map of one extraction run.

    ``maps`` has one row per map with at least the columns of :data:`REQUIRED_COLUMNS` (``example_id`` as str,
    ``layer``/``head`` as int). ``model`` and ``revision`` come from the extraction run's manifest when it
    names them; ``head_mask`` is the mask the run was extracted with (``None``: no mask, or not recorded --
    see
    ``mask_recorded``). ``n_layers``/``n_heads`` are the model's head grid when the manifest says so.
    ``model`` identifies the checkpoint (its path when recorded); ``model_name`` is the short name for
              display.
    """

    maps: pd.DataFrame
    model: str | None = None
    model_name: str | None = None
    revision: str | None = None
    head_mask: np.ndarray | None = None  # (L, H) bool, True = kept
    mask_recorded: bool = False
    n_layers: int | None = None
    n_heads: int | None = None
    classifier: Any = None  # the classifier checkpoint description from the classify manifest, if any
    source: str | None = None
    manifest: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.maps = _validate_frame(self.maps, self.describe())

    # -- descriptions
    # -------------------------------------------------------------------------------------------
    def describe(self) -> str:
        """A short name for messages: the source path, else the model."""
        return self.source or (
            f"table of {self.model_name or self.model}" if self.model else "classification table"
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        present = set(self.maps["kind"].unique())
        return tuple(k for k in MAP_KINDS if k in present)

    @property
    def heads(self) -> list[Head]:
        """(layer, head) of the per-head kinds' maps (layer-level kinds, listed under head -1, are not heads)."""
        maps = self.maps[self.maps["head"] != LAYER_HEAD]
        pairs = maps[["layer", "head"]].drop_duplicates().sort_values(["layer", "head"])
        return [(int(a), int(b)) for a, b in pairs.itertuples(index=False)]

    def example_ids(self, kind: str) -> set[str]:
        return set(self.maps.loc[self.maps["kind"] == kind, "example_id"].unique())

    @property
    def n_examples(self) -> int:
        return int(self.maps["example_id"].nunique())

    # -- construction
    # -------------------------------------------------------------------------------------------
    @classmethod
    def from_frame(cls, maps: pd.DataFrame, manifest: Mapping | None = None, source: str | None = None):
        """Build a table from a data frame of maps and the classify manifest (or an extraction run "
        "manifest)."""
        manifest = dict(manifest or {})
        run_manifest = manifest.get("run_manifest", manifest)
        if not isinstance(run_manifest, Mapping):
            raise AnalysisInputError(f"{source or 'manifest'}: 'run_manifest' should be a JSON object")
        model, revision = _model_identity(run_manifest)
        mask_recorded = "head_mask" in run_manifest
        head_mask = _mask_from_manifest(run_manifest.get("head_mask"), source) if mask_recorded else None
        n_layers, n_heads = _grid_from_manifest(run_manifest)
        if head_mask is not None:
            if n_layers is not None and n_heads is not None and head_mask.shape != (n_layers, n_heads):
                raise AnalysisInputError(
                    f"{source or 'manifest'}: the head mask has shape {head_mask.shape} but the manifest "
                    f"says the model has {n_layers} layers x {n_heads} heads"
                )
            n_layers, n_heads = head_mask.shape
        return cls(
            maps=maps,
            model=model,
            model_name=_display_name(run_manifest) or model,
            revision=revision,
            head_mask=head_mask,
            mask_recorded=mask_recorded,
            n_layers=n_layers,
            n_heads=n_heads,
            classifier=manifest.get("checkpoint"),
            source=source,
            manifest=manifest,
        )

    @classmethod
    def from_classification_table(cls, table) -> "PatternTable":
        """From the in-memory result of ``attnpatterns.patterns.classify_run`` (a ``ClassificationTable``)."""
        manifest = {
            "run_manifest": dict(table.run_manifest or {}),
            "checkpoint": dict(table.checkpoints or {}),
        }
        return cls.from_frame(table.rows, manifest, source=getattr(table, "source", None) or None)


def load_pattern_table(path: str | Path) -> PatternTable:
    """Load the output of ``attnpatterns classify``: a folder holding ``classifications.csv`` (and, ideally,
    ``manifest.json``), or the CSV file itself (its folder's manifest is read when present)."""
    path = Path(path)
    if path.is_dir():
        csv = path / CLASSIFICATIONS_FILE
        if not csv.is_file():
            raise AnalysisInputError(
                f"{path} holds no {CLASSIFICATIONS_FILE}; pass the output folder of `attnpatterns classify` "
                "(or the CSV file itself)"
            )
    elif path.is_file():
        csv = path
    else:
        raise AnalysisInputError(f"classification table {path} does not exist")
    try:
        frame = pd.read_csv(csv, dtype={"example_id": str}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise AnalysisInputError(f"{csv} is not a readable CSV classification table ({err})") from err
    manifest_path = csv.parent / MANIFEST_FILE
    manifest: dict = {}
    if manifest_path.is_file():
        manifest = _read_json(manifest_path)
        if not isinstance(manifest, dict):
            raise AnalysisInputError(f"{manifest_path} should hold a JSON object")
    return PatternTable.from_frame(frame, manifest, source=str(csv.parent if path.is_dir() else csv))


def _validate_frame(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise AnalysisInputError(
            f"{where}: missing column(s) {', '.join(missing)}; a classification table needs "
            f"{', '.join(REQUIRED_COLUMNS)} (as written by `attnpatterns classify`)"
        )
    frame = frame.copy()
    if frame[list(REQUIRED_COLUMNS)].isna().any().any():
        bad = frame[list(REQUIRED_COLUMNS)].isna().any(axis=1)
        raise AnalysisInputError(
            f"{where}: {int(bad.sum())} row(s) have empty cells in {', '.join(REQUIRED_COLUMNS)}"
        )
    frame["example_id"] = frame["example_id"].astype(str)
    per_layer = frame["kind"].astype(str).str.strip().isin(LAYER_KINDS)  # one map per layer, head LAYER_HEAD
    for col in ("layer", "head"):
        try:
            values = pd.to_numeric(frame[col], errors="raise")
        except (ValueError, TypeError) as err:
            raise AnalysisInputError(f"{where}: column {col!r} must hold integers ({err})") from err
        checked = values[~per_layer] if col == "head" else values
        if col == "head" and per_layer.any() and (values[per_layer] != LAYER_HEAD).any():
            raise AnalysisInputError(
                f"{where}: rows of the layer-level kinds ({', '.join(LAYER_KINDS)}) must have head {LAYER_HEAD}"
            )
        if len(checked) and (checked.min() < 0 or not np.all(np.asarray(values) == np.round(values))):
            raise AnalysisInputError(
                f"{where}: column {col!r} must hold non-negative integers (-1 marks maps classified from "
                "loose files whose names give no layer and head; classify an extraction run instead)"
            )
        frame[col] = values.astype(int)
    frame["kind"] = frame["kind"].astype(str).str.strip()
    frame["label"] = frame["label"].astype(str).str.strip()
    unknown_kinds = sorted(set(frame["kind"]) - set(MAP_KINDS))
    if unknown_kinds:
        raise AnalysisInputError(
            f"{where}: unknown map kind(s) {unknown_kinds}; expected {', '.join(MAP_KINDS)}"
        )
    unknown = sorted(set(frame["label"]) - set(PATTERN_TYPES))
    if unknown:
        raise AnalysisInputError(
            f"{where}: unknown pattern label(s) {unknown}; labels must be one of {', '.join(PATTERN_TYPES)}"
        )
    dup = frame.duplicated(["example_id", "layer", "head", "kind"])
    if dup.any():
        first = frame.loc[dup, ["example_id", "layer", "head", "kind"]].iloc[0].tolist()
        raise AnalysisInputError(
            f"{where}: {int(dup.sum())} map(s) appear more than once (first: example {first[0]}, "
            f"layer {first[1]}, head {first[2]}, {first[3]}); was the table appended to twice?"
        )
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------------------
# Consistency checks
# ------------------------------------------------------------------------------------------------------------


def check_full_table(table: PatternTable, survivors: Survivors, role: str) -> None:
    """A full-model table: same head grid as the survivors, no head or MLP mask, a map for every head."""
    where = f"{role} table ({table.describe()})"
    _check_grid(table, survivors, where)
    if table.head_mask is not None and not table.head_mask.all():
        raise AnalysisInputError(
            f"{where} comes from a masked extraction run (it keeps {int(table.head_mask.sum())} of "
            f"{table.head_mask.size} heads); the full-model condition needs maps extracted without "
            "a --head-mask"
        )
    mlp_mask = _recorded_mlp_mask(table)
    if mlp_mask is not None and not mlp_mask.all():
        raise AnalysisInputError(
            f"{where} comes from an extraction run with an MLP mask (it keeps {int(mlp_mask.sum())} of "
            f"{mlp_mask.size} MLPs); the full-model condition needs maps extracted without --mlp-mask"
        )
    have = set(table.heads)
    if not have and all(k in LAYER_KINDS for k in table.kinds):
        return  # layer-level maps only: there are no heads to check
    expected = set(survivors.all_heads)
    missing, extra = sorted(expected - have), sorted(have - expected)
    if extra:
        raise AnalysisInputError(
            f"{where} has maps for head(s) {_fmt_heads(extra)} outside the {survivors.n_layers} x "
            f"{survivors.n_heads} grid of {survivors.source or 'the survivors'}: the two describe "
            "different models"
        )
    if missing:
        raise AnalysisInputError(
            f"{where} lacks maps for {len(missing)} of {len(expected)} heads ({_fmt_heads(missing)}); the "
            "full-model condition needs every head: extract and classify without a head mask or head filter"
        )


def check_survivor_table(table: PatternTable, survivors: Survivors, role: str) -> None:
    """A super-survivors table: same head grid, extracted with the super-survivor head mask and (when the survivors
    have MLP masks and the run recorded its own) the mask of the MLPs kept in every seed, as the pipeline does."""
    where = f"{role} table ({table.describe()})"
    _check_grid(table, survivors, where)
    fix = (
        f"extract it with --head-mask pointing at {SUPER_HEAD_MASK_FILE} next to "
        f"{survivors.source or SURVIVORS_FILE}"
    )
    if table.mask_recorded:
        if table.head_mask is None:
            raise AnalysisInputError(f"{where} comes from an unmasked extraction run; {fix}")
        differ = np.argwhere(table.head_mask != survivors.head_mask)
        if len(differ):
            raise AnalysisInputError(
                f"{where} was extracted with a head mask that keeps {int(table.head_mask.sum())} heads, but "
                f"there are {len(survivors.heads)} super-survivors and {len(differ)} head(s) differ "
                f"({_fmt_heads([tuple(map(int, d)) for d in differ])}); {fix}"
            )
    have, expected = set(table.heads), set(survivors.heads)
    if have != expected and (have or not all(k in LAYER_KINDS for k in table.kinds)):
        extra, missing = sorted(have - expected), sorted(expected - have)
        parts = []
        if extra:
            parts.append(f"maps for non-survivor head(s) {_fmt_heads(extra)}")
        if missing:
            parts.append(f"no maps for super-survivor head(s) {_fmt_heads(missing)}")
        raise AnalysisInputError(f"{where} has {' and '.join(parts)}; {fix}")
    recorded = _run_manifest(table)
    if "mlp_mask" in recorded and survivors.super_mlp_mask is not None:
        # the super-survivors condition keeps the MLPs kept in every seed too, as the pipeline extracts it
        mlp_mask = _recorded_mlp_mask(table)
        kept = np.ones(survivors.n_layers, bool) if mlp_mask is None else mlp_mask
        wanted = survivors.super_mlp_mask.astype(bool)
        if kept.shape != wanted.shape or (kept != wanted).any():
            raise AnalysisInputError(
                f"{where} was extracted keeping MLPs {np.flatnonzero(kept).tolist()}, but the MLPs kept in every "
                f"seed are {np.flatnonzero(wanted).tolist()}; {fix} and --mlp-mask pointing at "
                f"{SUPER_MLP_MASK_FILE}"
            )


def check_same_model(a: PatternTable, b: PatternTable, what: str) -> None:
    """Two tables of one weights condition (full and super-survivors) must come from the same model."""
    if a.model is not None and b.model is not None and _norm_model(a.model) != _norm_model(b.model):
        raise AnalysisInputError(
            f"the {what} tables come from different models: {a.describe()} was extracted from {a.model!r}, "
            f"{b.describe()} from {b.model!r}; extract both from the same checkpoint"
        )
    if a.revision and b.revision and a.revision != b.revision:
        raise AnalysisInputError(
            f"the {what} tables come from different revisions of {a.model!r}: "
            f"{a.revision!r} vs {b.revision!r}"
        )


def _run_manifest(table: PatternTable) -> Mapping:
    """The extraction run's manifest behind ``table`` (inside a classification manifest, or the manifest itself)."""
    manifest = table.manifest if isinstance(table.manifest, Mapping) else {}
    run = manifest.get("run_manifest", manifest)
    return run if isinstance(run, Mapping) else {}


def _recorded_mlp_mask(table: PatternTable) -> np.ndarray | None:
    """The MLP mask the run was extracted with, as bools (None: none, or not recorded)."""
    mask = _run_manifest(table).get("mlp_mask")
    if mask is None:
        return None
    try:
        return np.asarray(mask, dtype=float).reshape(-1) == 1
    except (TypeError, ValueError) as err:
        raise AnalysisInputError(f"{table.describe()}: the recorded MLP mask is not a list of 0/1 ({err})") from err


def _inputs_of(table: PatternTable) -> dict:
    """What the extraction run recorded of its inputs: the texts' digest (runs since session 17), the input file's
    sha256 (runs from a file), and the max length the texts were cut to."""
    run = _run_manifest(table)
    config = run.get("config") if isinstance(run.get("config"), Mapping) else {}
    inputs = config.get("inputs") if isinstance(config.get("inputs"), Mapping) else {}
    return {"texts": run.get("examples_sha256"), "file": inputs.get("sha256"), "max_length": config.get("max_length")}


def check_same_examples(tables: Iterable[tuple[str, PatternTable]], kind: str) -> None:
    """Every condition must be measured on the same examples (else differences may come from the texts): the same
    example ids, and, where the runs recorded them, the same texts (their digest, or the input file's sha256) cut to
    the same max length. Ids alone can match for different texts (line numbers of two files, ``--limit N`` of two
    tasks)."""
    tables = list(tables)
    ref_name, ref = tables[0]
    ref_inputs, ref_ids = _inputs_of(ref), ref.example_ids(kind)
    for name, table in tables[1:]:
        inputs = _inputs_of(table)
        for what, label in (("texts", "texts"), ("file", "input files"), ("max_length", "--max-length")):
            if ref_inputs[what] is not None and inputs[what] is not None and ref_inputs[what] != inputs[what]:
                raise AnalysisInputError(
                    f"the {name} table and the {ref_name} table were extracted from different {label} "
                    f"({_short(inputs[what])} and {_short(ref_inputs[what])}); extract every condition from the "
                    "same input texts with the same --max-length, or allow different examples"
                )
        ids = table.example_ids(kind)
        if ids != ref_ids:
            only_a, only_b = sorted(ref_ids - ids), sorted(ids - ref_ids)
            raise AnalysisInputError(
                f"the {name} table and the {ref_name} table cover different examples for {kind} maps "
                f"({len(only_a)} only in {ref_name}, e.g. {only_a[:3]}; {len(only_b)} only in {name}, e.g. "
                f"{only_b[:3]}); extract every condition from the same input texts, or allow "
                "different examples"
            )


def _short(value) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text  # a sha256: its first 12 digits


def _check_grid(table: PatternTable, survivors: Survivors, where: str) -> None:
    if table.n_layers is not None and table.n_heads is not None:
        if (table.n_layers, table.n_heads) != (survivors.n_layers, survivors.n_heads):
            raise AnalysisInputError(
                f"{where} describes a model with {table.n_layers} layers x {table.n_heads} heads"
                f"{f' ({table.model})' if table.model else ''}, but {survivors.source or 'the survivors'} "
                f"describes {survivors.n_layers} x {survivors.n_heads}: they come from different models"
            )
    outside = [h for h in table.heads if not (h[0] < survivors.n_layers and h[1] < survivors.n_heads)]
    if outside:
        raise AnalysisInputError(
            f"{where} has maps for head(s) {_fmt_heads(outside)} outside the {survivors.n_layers} x "
            f"{survivors.n_heads} grid of {survivors.source or 'the survivors'}: they come from "
            "different models"
        )


# ------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------

_MODEL_KEYS = ("model", "model_name", "model_name_or_path", "model_id", "model_path", "name_or_path")
_LAYER_KEYS = ("n_layers", "num_layers", "num_hidden_layers")
_HEAD_KEYS = ("n_heads", "num_heads", "num_attention_heads")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnalysisInputError(f"{path} is not valid JSON ({err})") from err


def _as_name(
    value: Any, keys: tuple[str, ...] = ("path", "name_or_path", "name", "source", "id")
) -> str | None:
    """A model's identity: its path when recorded (two fine-tuned seeds may share a short name), else its "
    "name."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        for key in keys:
            if value.get(key):
                return str(value[key])
        return None
    return str(value)


def _model_identity(manifest: Mapping) -> tuple[str | None, str | None]:
    model = next((_as_name(manifest[k]) for k in _MODEL_KEYS if manifest.get(k)), None)
    return model, _revision(manifest)


def _display_name(manifest: Mapping) -> str | None:
    return next(
        (_as_name(manifest[k], ("name", "name_or_path", "path")) for k in _MODEL_KEYS if manifest.get(k)),
        None,
    )


def _revision(manifest: Mapping) -> str | None:
    revision = manifest.get("revision")
    if revision is None:
        value = next((manifest[k] for k in _MODEL_KEYS if isinstance(manifest.get(k), Mapping)), None)
        revision = value.get("revision") if value else None
    return None if revision is None else str(revision)


def _grid_from_manifest(manifest: Mapping) -> tuple[int | None, int | None]:
    scopes = [manifest] + [
        manifest[k] for k in ("model", "config", "model_config") if isinstance(manifest.get(k), Mapping)
    ]
    layers = next((s[k] for s in scopes for k in _LAYER_KEYS if isinstance(s.get(k), int)), None)
    heads = next((s[k] for s in scopes for k in _HEAD_KEYS if isinstance(s.get(k), int)), None)
    return layers, heads


def _mask_from_manifest(value: Any, source: str | None) -> np.ndarray | None:
    """The extraction manifest stores the head mask as a nested list (or None); a path to a .npy is "
    "tolerated."""
    if value is None:
        return None
    if isinstance(value, str):
        path = Path(value)
        if path.is_dir():
            path = path / "head_mask.npy"
        if not path.is_file():
            raise AnalysisInputError(
                f"{source or 'manifest'}: the run's head_mask refers to {value}, which cannot be found here"
            )
        value = np.load(path, allow_pickle=False)
    try:
        mask = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise AnalysisInputError(f"{source or 'manifest'}: head_mask must be a layers x heads list") from err
    if mask.ndim != 2:
        raise AnalysisInputError(
            f"{source or 'manifest'}: head_mask must be 2-D (layers x heads), got {mask.shape}"
        )
    return mask > 0.5


def _norm_model(name: str) -> str:
    path = Path(name)
    try:
        return str(path.resolve()) if path.exists() else name
    except OSError:
        return name


def _fmt_heads(heads: list, limit: int = 6) -> str:
    shown = ", ".join(f"({a}, {b})" for a, b in heads[:limit])
    return shown + (f", ... ({len(heads)} in all)" if len(heads) > limit else "")

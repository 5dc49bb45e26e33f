"""Checkpoints of the pattern classifier: a folder of safetensors weights plus a JSON description. No pickle.

Layout of a checkpoint folder::

    model.safetensors   the network's state dict (tensors only; loaded with safetensors, never unpickled)
    classifier.json     format tag and version, kind ("raw"/"normed"), label names, preprocessing and
                        architecture configs, training config and data (source, class counts, SHA-256 of the
                        maps and labels), cross-validation summary, library versions, and the SHA-256 of
                        model.safetensors (so that a damaged weights file is detected even where it still parses)

:func:`load_checkpoint` refuses, each with an error that says what to do: a path that is not a checkpoint, a JSON
file that does not parse or is not a classifier checkpoint, a weights file that is truncated, corrupt, altered or
does not fit the architecture, and a checkpoint of the wrong kind.

The default checkpoints ship inside the package (``attnpatterns/patterns/checkpoints/raw`` and ``.../normed``)
and are rebuilt from ``annotations/`` by :data:`REBUILD_COMMAND`.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from attnpatterns.constants import MAP_KINDS
from attnpatterns.patterns.classifier import PatternClassifier
from attnpatterns.patterns.forest import STATE_PREFIX as FOREST_PREFIX
from attnpatterns.patterns.forest import trees_from_state_dict
from attnpatterns.patterns.model import ModelConfig, PatternEnsemble
from attnpatterns.patterns.preprocess import PreprocessConfig
from attnpatterns.runfolder import file_sha256

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "classifier.json"
#: Sub-folder of a training run that holds its final checkpoint.
RUN_CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FORMAT = "attnpatterns-pattern-classifier"
#: 2: a random forest may sit next to the network (forest.* tensors); 3: the tree model may be gradient boosting
#: (ModelConfig.forest_method), whose tensors an older attnpatterns would misread
CHECKPOINT_FORMAT_VERSION = 3

#: Where the shipped default checkpoints live, one sub-folder per kind.
DEFAULT_CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"

#: The one documented command that rebuilds the shipped defaults from the project's corpus.
REBUILD_COMMAND = "uv run python -m attnpatterns.patterns.rebuild_defaults"


class CheckpointError(ValueError):
    """A path that is not a usable classifier checkpoint (missing, corrupt, wrong format)."""


class NoDefaultCheckpointError(CheckpointError):
    """No shipped default checkpoint exists for a kind yet."""


def library_versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint or report depends on."""
    import numpy
    import sklearn

    import attnpatterns

    return {
        "attnpatterns": attnpatterns.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(classifier: PatternClassifier, folder: str | Path) -> Path:
    """Write ``classifier`` to ``folder`` (created; existing checkpoint files are replaced). Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in classifier.network.state_dict().items()}
    if classifier.forest is not None:
        state.update(classifier.forest.state_dict())
    weights = folder / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": CHECKPOINT_FORMAT, "kind": classifier.kind})
    metadata = {k: v for k, v in classifier.metadata.items() if k != "path"}
    config = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": classifier.kind,
        "label_names": list(classifier.label_names),
        "preprocess": classifier.preprocess.to_dict(),
        "model": classifier.network.config.to_dict(),
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": file_sha256(weights),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **metadata,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept a checkpoint folder, a training-run folder (uses its ``checkpoint/``) or either checkpoint file."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS_FILE, CONFIG_FILE):
        return path.parent
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return path
    if path.is_dir() and (path / RUN_CHECKPOINT_DIR / CONFIG_FILE).is_file():
        return path / RUN_CHECKPOINT_DIR
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    raise CheckpointError(
        f"{path} is not a classifier checkpoint: expected a folder with {CONFIG_FILE} and {WEIGHTS_FILE} "
        f"(or a training run folder with {RUN_CHECKPOINT_DIR}/), as written by 'attnpatterns train'"
    )


def load_checkpoint(
    path: str | Path, kind: str | None = None, device: torch.device | str = "cpu"
) -> PatternClassifier:
    """Load a checkpoint without unpickling anything; if ``kind`` is given, refuse a checkpoint of another kind."""
    folder = resolve_checkpoint_dir(path)
    config_path = folder / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is corrupt (not valid JSON: {exc}); retrain or restore it") from exc
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{config_path} is not a pattern-classifier checkpoint (format tag missing)")
    if int(config.get("format_version", -1)) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has checkpoint format version {config.get('format_version')}, newer than this "
            f"attnpatterns understands ({CHECKPOINT_FORMAT_VERSION}); upgrade attnpatterns"
        )
    try:
        ckpt_kind = config["kind"]
        preprocess = PreprocessConfig.from_dict(config["preprocess"])
        model_config = ModelConfig.from_dict(config["model"])
        label_names = tuple(config["label_names"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path} is incomplete or invalid ({exc!r}); retrain the checkpoint") from exc
    if ckpt_kind not in MAP_KINDS:
        raise CheckpointError(f"{config_path} names an unknown map kind {ckpt_kind!r}")

    weights = folder / config.get("weights_file", WEIGHTS_FILE)
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no weights file {weights.name}")
    expected = config.get("weights_sha256")
    if expected and file_sha256(weights) != expected:
        raise CheckpointError(
            f"{weights} is corrupt: its SHA-256 differs from the one recorded in {CONFIG_FILE} "
            "(the file was truncated or altered); retrain or restore it"
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights} is corrupt or not a safetensors file ({exc}); retrain or restore it") from exc

    metadata = {k: v for k, v in config.items() if k not in ("preprocess", "model", "kind", "label_names")}
    metadata["path"] = str(folder)
    network = PatternEnsemble(model_config, preprocess.n_channels, preprocess.n_vector)
    forest_state = {k: v for k, v in state.items() if k.startswith(FOREST_PREFIX)}
    state = {k: v for k, v in state.items() if not k.startswith(FOREST_PREFIX)}
    forest = None
    if model_config.forest_weight > 0:
        try:
            forest = trees_from_state_dict(model_config.forest_method, forest_state)
        except ValueError as exc:
            raise CheckpointError(f"{weights}: {exc}; retrain the checkpoint") from exc
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{weights} does not fit the architecture described in {CONFIG_FILE} ({exc}); retrain the checkpoint"
        ) from exc
    try:
        classifier = PatternClassifier(network.eval(), ckpt_kind, preprocess, label_names, metadata, forest)
    except ValueError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from exc
    classifier.check_kind(kind)
    return classifier.to(device)


def default_checkpoint_path(kind: str) -> Path:
    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MAP_KINDS)}, got {kind!r}")
    return DEFAULT_CHECKPOINT_DIR / kind


def load_default_checkpoint(kind: str, device: torch.device | str = "cpu") -> PatternClassifier:
    """The shipped checkpoint for ``kind``; a clear error saying how to build it when there is none."""
    folder = default_checkpoint_path(kind)
    if not (folder / CONFIG_FILE).is_file():
        raise NoDefaultCheckpointError(
            f"no default {kind} pattern classifier is installed ({folder} is empty). Build the defaults from the "
            f"annotated corpus with `{REBUILD_COMMAND}` (needs annotations/), or pass a checkpoint trained with "
            f"`attnpatterns train --kind {kind} -o RUN`"
        )
    return load_checkpoint(folder, kind=kind, device=device)


#: Report files of a training run copied next to an installed default, so the shipped checkpoint documents itself.
DEFAULT_REPORT_FILES = ("report.txt", "confusion_matrix.png")
#: Subfolder of a shipped checkpoint with its scores on the held-out test set (``attnpatterns evaluate -o``).
TESTSET_REPORT_DIR = "testset"


def install_default_checkpoint(path: str | Path, report_folder: str | Path | None = None) -> Path:
    """Make the checkpoint at ``path`` the shipped default for its kind (replacing the previous one).

    The checkpoint is loaded first, so a broken one is never installed. ``report_folder`` (a training run) adds
    its cross-validation report files (:data:`DEFAULT_REPORT_FILES`) beside the installed checkpoint.
    """
    import shutil

    classifier = load_checkpoint(path)
    source = resolve_checkpoint_dir(path)
    target = default_checkpoint_path(classifier.kind)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_file():
            old.unlink()
    shutil.rmtree(target / TESTSET_REPORT_DIR, ignore_errors=True)  # the old checkpoint's scores, not this one's
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(source / name, target / name)
    if report_folder is not None:
        for name in DEFAULT_REPORT_FILES:
            if (Path(report_folder) / name).is_file():
                shutil.copyfile(Path(report_folder) / name, target / name)
    load_checkpoint(target, kind=classifier.kind)
    return target

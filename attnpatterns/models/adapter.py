"""The architecture adapter: the one place that knows where Q/K/V, the attention output projection and the FFN live.

Every other module (gates, extraction, importance, surgery) asks an :class:`EncoderAdapter` for the pieces it needs
by layer index, so supporting another encoder family means writing one more adapter here. BERT, RoBERTa, ELECTRA,
XLM-R, CamemBERT and MiniLM share the BERT layout (``encoder.layer[i].attention.self.query`` and so on), which is
what :class:`BertStyleAdapter` covers, for bare encoders and for ``*ForSequenceClassification`` models alike.

The adapter also keeps the bookkeeping of *original* head ids. Physical pruning (``attnpatterns.models.surgery``)
removes heads from the weight matrices, so after surgery position ``k`` in a layer's Q/K/V is no longer head ``k``;
``adapter.head_ids(layer)`` maps positions back to the ids the head had in the unpruned model. The ids are stored
on the model config (``attnpatterns_head_ids``) so that they survive ``save_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: model_type values known to use the BERT module layout.
BERT_STYLE_MODEL_TYPES = ("bert", "roberta", "electra", "xlm-roberta", "camembert", "data2vec-text", "ernie")

HEAD_IDS_CONFIG_KEY = "attnpatterns_head_ids"
PRUNED_MLPS_CONFIG_KEY = "attnpatterns_pruned_mlps"


class UnsupportedArchitectureError(ValueError):
    """Raised for a model whose module layout no adapter knows."""


@dataclass(frozen=True)
class LayerModules:
    """The linear maps of one encoder layer that attnpatterns reads or changes."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attn_out: nn.Linear  # attention output projection W_O (input columns are per-head blocks)
    ffn_in: nn.Linear  # intermediate dense
    ffn_out: nn.Linear  # FFN output dense, before dropout + residual + LayerNorm
    self_attention: nn.Module  # returns (context, attention_probs) in eager mode
    attn_norm: nn.LayerNorm  # LayerNorm after the attention output projection + residual (its input is their sum)
    block: nn.Module  # the whole encoder layer: hidden states in, layer output (after the FFN's LayerNorm) out


class EncoderAdapter:
    """Interface every architecture adapter implements."""

    model: nn.Module

    @property
    def num_layers(self) -> int:
        raise NotImplementedError

    @property
    def num_heads(self) -> int:
        """Heads per layer in the original (unpruned) model."""
        raise NotImplementedError

    @property
    def head_dim(self) -> int:
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        raise NotImplementedError

    def layer(self, index: int) -> LayerModules:
        raise NotImplementedError

    def head_ids(self, layer: int) -> list[int]:
        raise NotImplementedError

    def set_head_ids(self, layer: int, ids: list[int]) -> None:
        raise NotImplementedError

    def encoder_linear_weights(self) -> list[tuple[str, nn.Linear]]:
        """Q/K/V/attention-output/FFN linears of every layer (what magnitude pruning acts on)."""
        out: list[tuple[str, nn.Linear]] = []
        for i in range(self.num_layers):
            mods = self.layer(i)
            for name in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out"):
                out.append((f"layer{i}.{name}", getattr(mods, name)))
        return out

    def mask_targets(self) -> dict[str, tuple[nn.Linear, str]]:
        """Every parameter a weight mask may name, as ``(linear, attribute)``: ``layer3.query`` is that linear's
        weight, ``layer3.query.bias`` its bias."""
        out: dict[str, tuple[nn.Linear, str]] = {}
        for name, linear in self.encoder_linear_weights():
            out[name] = (linear, "weight")
            if linear.bias is not None:
                out[f"{name}.bias"] = (linear, "bias")
        return out


class BertStyleAdapter(EncoderAdapter):
    """Adapter for the BERT module layout (BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT, MiniLM)."""

    def __init__(self, model: nn.Module):
        self.model = model
        base = getattr(model, "base_model", model)
        encoder = getattr(base, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if layers is None or len(layers) == 0 or not hasattr(layers[0], "attention"):
            raise UnsupportedArchitectureError(_unsupported_message(model))
        first = layers[0]
        if not all(hasattr(first.attention.self, n) for n in ("query", "key", "value")):
            raise UnsupportedArchitectureError(_unsupported_message(model))
        self._layers = layers
        self.config = model.config
        if getattr(self.config, HEAD_IDS_CONFIG_KEY, None) is None:
            setattr(self.config, HEAD_IDS_CONFIG_KEY, [list(range(self.num_heads)) for _ in range(len(layers))])

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def head_dim(self) -> int:
        return int(self._layers[0].attention.self.attention_head_size)

    def layer(self, index: int) -> LayerModules:
        layer = self._layers[index]
        sa = layer.attention.self
        return LayerModules(
            query=sa.query,
            key=sa.key,
            value=sa.value,
            attn_out=layer.attention.output.dense,
            ffn_in=layer.intermediate.dense,
            ffn_out=layer.output.dense,
            self_attention=sa,
            attn_norm=layer.attention.output.LayerNorm,
            block=layer,
        )

    def head_ids(self, layer: int) -> list[int]:
        return list(getattr(self.config, HEAD_IDS_CONFIG_KEY)[layer])

    def set_head_ids(self, layer: int, ids: list[int]) -> None:
        table = [list(x) for x in getattr(self.config, HEAD_IDS_CONFIG_KEY)]
        table[layer] = [int(i) for i in ids]
        setattr(self.config, HEAD_IDS_CONFIG_KEY, table)
        # Keep the module's own bookkeeping consistent with its (possibly smaller) weight matrices.
        sa = self._layers[layer].attention.self
        sa.num_attention_heads = len(ids)
        sa.all_head_size = len(ids) * sa.attention_head_size


def _unsupported_message(model: nn.Module) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    return (
        f"attnpatterns has no adapter for model type {model_type!r} ({type(model).__name__}). Supported: the BERT "
        f"module layout ({', '.join(BERT_STYLE_MODEL_TYPES)}). Use such a checkpoint, or add an adapter in "
        "attnpatterns/models/adapter.py (one class that returns each layer's Q/K/V, attention output and FFN)."
    )


def get_adapter(model: nn.Module) -> EncoderAdapter:
    """Return the adapter for ``model`` or raise :class:`UnsupportedArchitectureError` saying what is supported."""
    cached = getattr(model, "_attnpatterns_adapter", None)
    if cached is not None:
        return cached
    adapter = BertStyleAdapter(model)
    # Not registered as a submodule: a plain attribute on the nn.Module instance.
    object.__setattr__(model, "_attnpatterns_adapter", adapter)
    return adapter


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device

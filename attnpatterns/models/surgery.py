"""Physical pruning: remove heads and whole MLPs from the weight matrices, keeping the original head ids.

Removing head h of a layer deletes its rows of Q, K and V and its columns of the attention output projection W_O;
removing an MLP empties its two linears (the FFN then adds exactly zero, as a gate of 0 does -- the output bias
goes too, because the MLP gate scales it away). A layer can lose all its heads: its self-attention then returns an
empty context, and the attention block adds only W_O's bias, again exactly what the all-zero gates give. The
adapter keeps the original ids of the remaining heads (``adapter.head_ids``) on the config, and removed MLPs are
recorded under ``attnpatterns_pruned_mlps``, so a pruned model written with ``save_pretrained`` loads back through
:func:`load_physically_pruned` (which :func:`attnpatterns.models.load_model` calls for such checkpoints).

Heads and MLPs are named here by id; removing what a head or MLP mask zeroes is
:func:`attnpatterns.masking.surgery.physically_prune`. Linears are shrunk in place (new parameters on the same module
objects), so no code outside the adapter needs to know where the modules live.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from attnpatterns.models.adapter import HEAD_IDS_CONFIG_KEY, PRUNED_MLPS_CONFIG_KEY, get_adapter


def _shrink_linear(linear: nn.Linear, keep: torch.Tensor, dim: int, keep_bias: bool = True) -> None:
    """Keep only the rows (``dim=0``, outputs) or columns (``dim=1``, inputs) listed in ``keep``, in place."""
    keep = keep.to(linear.weight.device)
    with torch.no_grad():
        weight = linear.weight.index_select(dim, keep).clone()
        bias = None
        if linear.bias is not None and keep_bias:
            bias = linear.bias.index_select(0, keep).clone() if dim == 0 else linear.bias.detach().clone()
    linear.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if bias is None:
        linear.register_parameter("bias", None)
    else:
        linear.bias = nn.Parameter(bias, requires_grad=weight.requires_grad)
    linear.out_features, linear.in_features = weight.shape


def _headless_forward(self, hidden_states: torch.Tensor, *args, **kwargs):
    """Self-attention of a layer whose heads were all removed: an empty context (B, T, 0) and no weights."""
    return hidden_states.new_zeros(*hidden_states.shape[:-1], 0), None


def prune_heads(model: nn.Module, heads: dict[int, Iterable[int]]) -> nn.Module:
    """Remove ``heads`` ({layer: [original head ids]}) from ``model`` in place; already removed ids are ignored."""
    adapter = get_adapter(model)
    d = adapter.head_dim
    for layer, remove in heads.items():
        remove = {int(h) for h in remove}
        bad = sorted(h for h in remove if not 0 <= h < adapter.num_heads)
        if not 0 <= layer < adapter.num_layers or bad:
            raise ValueError(f"no head {bad or sorted(remove)} in layer {layer} of a "
                             f"{adapter.num_layers} x {adapter.num_heads} model")
        current = adapter.head_ids(layer)
        kept_pos = [p for p, h in enumerate(current) if h not in remove]
        if len(kept_pos) == len(current):
            continue
        mods = adapter.layer(layer)
        index = torch.tensor([p * d + j for p in kept_pos for j in range(d)], dtype=torch.long)  # rows of kept heads
        for linear in (mods.query, mods.key, mods.value):
            _shrink_linear(linear, index, dim=0)
        _shrink_linear(mods.attn_out, index, dim=1)
        adapter.set_head_ids(layer, [current[p] for p in kept_pos])
        if not kept_pos:
            mods.self_attention.forward = types.MethodType(_headless_forward, mods.self_attention)
    return model


def prune_mlps(model: nn.Module, layers: Iterable[int]) -> nn.Module:
    """Remove the whole FFN of each of ``layers`` in place (recorded on the config)."""
    adapter = get_adapter(model)
    done = set(getattr(model.config, PRUNED_MLPS_CONFIG_KEY, None) or [])
    empty = torch.zeros(0, dtype=torch.long)
    for layer in sorted({int(x) for x in layers}):
        if not 0 <= layer < adapter.num_layers:
            raise ValueError(f"no layer {layer} in a {adapter.num_layers}-layer model")
        if layer in done:
            continue
        mods = adapter.layer(layer)
        _shrink_linear(mods.ffn_in, empty, dim=0)  # (0, hidden): no intermediate units
        _shrink_linear(mods.ffn_out, empty, dim=1, keep_bias=False)  # (hidden, 0), no bias: adds exactly 0
        done.add(layer)
    setattr(model.config, PRUNED_MLPS_CONFIG_KEY, sorted(done))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- loading ---------------------------------------------------------------------------------------------------
def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        out: dict[str, torch.Tensor] = {}
        for name in files:
            out.update(load_file(str(path / name)))
        return out
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise OSError(f"no model.safetensors (or pytorch_model.bin) in {path}")


def _match_prefix(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Add or strip the base-model prefix (``bert.``) so a classifier checkpoint loads into an encoder and back."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    wanted = set(model.state_dict())
    if not prefix.strip(".") or any(k in wanted for k in state):
        return state
    if any(k.startswith(prefix) for k in state):  # checkpoint has the prefix, model does not
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {prefix + k: v for k, v in state.items()}  # model has the prefix, checkpoint does not


def load_physically_pruned(cls, path: str | Path, **kwargs) -> nn.Module:
    """Load a checkpoint saved after physical pruning: build the full model, cut it the same way, load.

    ``cls`` is an Auto class (``AutoModel`` or ``AutoModelForSequenceClassification``); ``kwargs`` are the
    ``from_pretrained`` keyword arguments ``load_model`` uses (``attn_implementation``, ``num_labels``).
    """
    from transformers import AutoConfig

    path = Path(path)
    kwargs = dict(kwargs)
    attn = kwargs.pop("attn_implementation", "eager")
    config = AutoConfig.from_pretrained(path, **kwargs)
    head_ids = getattr(config, HEAD_IDS_CONFIG_KEY, None)
    pruned_mlps = list(getattr(config, PRUNED_MLPS_CONFIG_KEY, None) or [])
    full = copy.deepcopy(config)
    setattr(full, HEAD_IDS_CONFIG_KEY, None)
    setattr(full, PRUNED_MLPS_CONFIG_KEY, [])
    model = cls.from_config(full, attn_implementation=attn)
    L, H = config.num_hidden_layers, config.num_attention_heads
    kept = head_ids or [range(H)] * L  # original ids of the heads each layer kept
    prune_heads(model, {layer: sorted(set(range(H)) - set(ids)) for layer, ids in enumerate(kept)})
    prune_mlps(model, pruned_mlps)
    state = _match_prefix(_read_state_dict(path), model)
    advice = "its weights do not match the pruned architecture its config describes; was the folder edited?"
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # size mismatches
        raise OSError(f"{path}: {advice} ({str(err).splitlines()[-1].strip()})") from err
    missing = [k for k in result.missing_keys if not k.startswith(("classifier.", "pooler."))]
    if missing:
        raise OSError(f"{path}: {advice} (missing {', '.join(missing[:3])})")
    model.eval()
    return model

"""Physical pruning from masks: remove the heads and MLPs that a head or MLP mask zeroes.

The cutting itself (by head id and layer, keeping original head ids) and the loading of pruned checkpoints are
:mod:`attnpatterns.models.surgery`'s; this module only checks the masks and turns their zeros into ids.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from attnpatterns.masking.files import check_head_mask, check_mlp_mask
from attnpatterns.models.adapter import get_adapter
from attnpatterns.models.surgery import prune_heads, prune_mlps


def physically_prune(model: nn.Module, head_mask=None, mlp_mask=None) -> nn.Module:
    """Remove every head with mask 0 and every MLP with mask 0 (masks over original ids), in place."""
    adapter = get_adapter(model)
    L, H = adapter.num_layers, adapter.num_heads
    if head_mask is not None:
        head_mask = check_head_mask(np.asarray(head_mask), L, H)
        prune_heads(model, {l: np.flatnonzero(head_mask[l] == 0).tolist() for l in range(L)})
    if mlp_mask is not None:
        mlp_mask = check_mlp_mask(np.asarray(mlp_mask), L)
        prune_mlps(model, np.flatnonzero(mlp_mask == 0).tolist())
    return model

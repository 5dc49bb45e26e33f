"""Layer-level context-mixing maps: attention rollout, Attn-N-ResLN, ALTI and value zeroing (pure tensor maths).

Each function turns what :class:`~attnpatterns.extraction.maps.MapCapture` captured in one forward pass (a layer's
input x, the attention probabilities α of its kept heads, the value projections, the input and output of the
LayerNorm after the attention block) into one (B, T, T) map per layer: row i is the query (the token being
updated), column j the token that contributes to it. Notation, for one layer of a post-LN BERT encoder::

    f^h(x_j) = (x_j W_V + b_V)_h W_O^h              the vector head h writes for token j (Kobayashi et al. 2020)
    y_i      = Σ_h Σ_j α^h_ij f^h(x_j) + b_O + x_i   the input of the attention block's LayerNorm
    x̃_i      = LN(y_i) = γ ⊙ (y_i − m(y_i)) / s(y_i) + β,   s(y_i) = sqrt(Var(y_i) + ε)  (biased variance)

Only the heads kept by the head mask enter the sums (a masked head adds nothing to y_i). Kobayashi et al. (2021)
decompose the LayerNorm linearly around the token's own statistics: with
g_i(z) = γ ⊙ (z − m(z)) / s(y_i), a linear map of z because m(z) is the mean of z's own elements,

    x̃_i = Σ_j g_i(z_ij) + g_i(b_O) + β,   z_ij = Σ_h α^h_ij f^h(x_j) + δ_ij x_i,

which holds exactly; ALTI's "transformed vectors" T_i(x_j) (Ferrando et al. 2022) are the same g_i(z_ij).
"""

from __future__ import annotations

import torch
from torch import nn


# -- shared pieces -------------------------------------------------------------------------------------------------
def head_vectors(value_out: torch.Tensor, w_out: torch.Tensor, positions: list[int], head_dim: int) -> torch.Tensor:
    """f^h(x_j) = (x_j W_V + b_V)_h W_O^h for the heads at ``positions``: value_out (B, T, Hc*d) → (B, T, Hk, D).

    ``w_out`` is the attention output projection's weight (D, Hc*d); the output bias b_O is not included.
    """
    B, T, _ = value_out.shape
    D = w_out.shape[0]
    if not positions:  # no kept head (masked, or removed by surgery: then there is nothing to view)
        return value_out.new_zeros(B, T, 0, D)
    idx = torch.as_tensor(positions, device=value_out.device, dtype=torch.long)
    v = value_out.view(B, T, -1, head_dim).index_select(2, idx)  # (B, T, Hk, d)
    w = w_out.view(D, -1, head_dim).index_select(1, idx).to(v.dtype)  # (D, Hk, d)
    return torch.einsum("bthe,dhe->bthd", v, w)  # (B, T, Hk, D)


def ln_linear(z: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """γ ⊙ (z − m(z)): the linear part of LayerNorm applied to a summand z (mean over z's own last dimension)."""
    return gamma * (z - z.mean(-1, keepdim=True))


def ln_scale(ln_input: torch.Tensor, eps: float) -> torch.Tensor:
    """s(y_i) = sqrt(Var(y_i) + ε), exactly the divisor ``nn.LayerNorm`` uses: (B, T, D) → (B, T)."""
    return torch.sqrt(ln_input.var(-1, unbiased=False) + eps)


def row_normalise(scores: torch.Tensor) -> torch.Tensor:
    """Divide each row by its sum; a row that sums to 0 (nothing contributes) stays 0."""
    total = scores.sum(-1, keepdim=True)
    return torch.where(total > 0, scores / total.clamp_min(torch.finfo(scores.dtype).tiny), torch.zeros_like(scores))


def roll(layer_map: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """One rollout step: R_l = M_l · R_{l−1} (R_1 = M_1); maps (B, T, T), row = query."""
    return layer_map if previous is None else torch.bmm(layer_map, previous)


# -- attention rollout ---------------------------------------------------------------------------------------------
def rollout_layer(alpha: torch.Tensor) -> torch.Tensor:
    """Ā_l = rownorm(0.5 · mean_h A^h_l + 0.5 · I) for the kept heads: alpha (B, Hk, T, T) → (B, T, T).

    Abnar & Zuidema (2020), "Quantifying Attention Flow in Transformers", ACL 2020 (and their code's
    ``compute_joint_attention``): heads are averaged, the residual connection is modelled by adding the identity
    with equal weight, and rows are renormalised. A layer with no kept head mixes nothing: Ā_l = I.
    """
    B, H, T, _ = alpha.shape
    eye = torch.eye(T, dtype=alpha.dtype, device=alpha.device).expand(B, T, T)
    if H == 0:
        return eye.clone()
    return row_normalise(0.5 * alpha.mean(1) + 0.5 * eye)


# -- Attn-N-ResLN (Kobayashi et al. 2021) --------------------------------------------------------------------------
def resln_layer(alpha: torch.Tensor, fc: torch.Tensor, xc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """‖g_i(z_ij)‖ = ‖γ ⊙ (z_ij − m(z_ij))‖ / s(y_i), z_ij = Σ_h α^h_ij f^h(x_j) + δ_ij x_i: → (B, T, T).

    Kobayashi, Kuribayashi, Yokoi & Inui (2021), "Incorporating Residual and Normalization Layers into Analysis of
    Masked Language Models", EMNLP 2021 (the Attn-N-ResLN norm of the whole attention block, "ATB"). The map
    is per layer because the residual and the LayerNorm belong to no head; b_O and β belong to no token and are left
    out, as in the paper.

    ``alpha`` (B, Hk, T, T); ``fc`` = γ ⊙ C f^h(x_j) (B, T, Hk, D) with C the centring; ``xc`` = γ ⊙ C x_i (B, T, D);
    ``scale`` = s(y_i) (B, T). Nothing of size B·T·T·D is built: off the diagonal,
    ‖Σ_h α^h_ij fc^h_j‖² = Σ_{h,k} α^h_ij α^k_ij G_j[h, k] with the per-token Gram G_j = fc_j fc_jᵀ (Hk × Hk);
    the diagonal, which also holds the residual, is computed from its vectors.
    """
    gram = torch.einsum("bjhd,bjkd->bjhk", fc, fc)  # (B, T, Hk, Hk)
    a = alpha.permute(0, 2, 3, 1)  # (B, Ti, Tj, Hk)
    sq = (torch.einsum("bijh,bjhk->bijk", a, gram) * a).sum(-1)  # (B, T, T)
    diag = torch.einsum("bhi,bihd->bid", alpha.diagonal(dim1=2, dim2=3), fc) + xc  # z_ii, (B, T, D)
    sq.diagonal(dim1=1, dim2=2).copy_((diag * diag).sum(-1))
    return sq.clamp_min_(0).sqrt_() / scale[:, :, None]


# -- ALTI (Ferrando, Gállego & Costa-jussà 2022) ---------------------------------------------------------------------
def alti_layer(
    alpha: torch.Tensor, fc: torch.Tensor, xc: torch.Tensor, scale: torch.Tensor, output: torch.Tensor,
    chunk_elements: int = 1 << 24,
) -> torch.Tensor:
    """Layer-wise ALTI contributions c_ij, each row normalised to sum 1: → (B, T, T).

    Ferrando, Gállego & Costa-jussà (2022), "Measuring the Mixing of Contextual Information in the Transformer",
    EMNLP 2022: T_i(x_j) = g_i(z_ij) (the transformed vectors, residual and LayerNorm included), x̃_i the
    actual output of the attention block's LayerNorm (``output``, biases and β included),

        c_ij = max(0, −‖x̃_i − T_i(x_j)‖₁ + ‖x̃_i‖₁) / Σ_k max(0, −‖x̃_i − T_i(x_k)‖₁ + ‖x̃_i‖₁)

    (Manhattan distance, as in the paper). s(y_i) is LayerNorm's own divisor sqrt(Var + ε); the authors' code
    uses std(y_i + ε), which differs from it by O(ε). The T_i(x_j) are built ``chunk_elements`` at a time (examples
    of one batch in turn), so memory stays bounded for long texts.
    """
    B, H, T, _ = alpha.shape
    D = fc.shape[-1]
    out_norm = output.abs().sum(-1)  # ‖x̃_i‖₁, (B, T)
    scores = torch.empty(B, T, T, dtype=output.dtype, device=output.device)
    rows = max(1, chunk_elements // max(1, T * D))  # query rows per piece
    for b in range(B):
        for start in range(0, T, rows):
            q = slice(start, min(T, start + rows))
            vec = torch.einsum("hij,jhd->ijd", alpha[b, :, q], fc[b])  # Σ_h α^h_ij fc^h_j, (Tq, T, D)
            idx = torch.arange(q.start, q.stop, device=vec.device)
            vec[idx - q.start, idx] += xc[b, q]  # the residual: δ_ij x_i
            vec /= scale[b, q, None, None]
            dist = (output[b, q, None, :] - vec).abs_().sum(-1)  # ‖x̃_i − T_i(x_j)‖₁, (Tq, T)
            scores[b, q] = (out_norm[b, q, None] - dist).clamp_min_(0)
    return row_normalise(scores)


# -- value zeroing (Mohebbi et al. 2023) -------------------------------------------------------------------------
#: Cosine distances at or below this are rounding, not an effect: float32 outputs that differ only by rounding
#: (relative 1e-7) are at a cosine distance of about 1e-14.
NOISE_FLOOR = 1e-10


def _example_view(t, b: int, n: int, B: int, T: int, copies: int):
    """Example ``b``'s slice of a layer argument, cropped to its ``n`` real tokens and repeated ``copies`` times.

    Tensors with a batch dimension of B are sliced to example b; their token axes of size T (the padded length)
    are cropped to n: axis 1 of (B, T) and (B, T, D) tensors (the hidden states; never D, which may equal T), the
    query and key axes 2 and 3 of a 4-D attention mask (never its head axis). Other arguments pass through unchanged.
    """
    if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[0] != B:
        return t
    token_axes = {2: (1,), 3: (1,), 4: (2, 3)}.get(t.ndim, ())
    index = (slice(b, b + 1),) + tuple(slice(0, n) if axis in token_axes and t.shape[axis] == T else slice(None)
                                       for axis in range(1, t.ndim))
    part = t[index]
    return part.expand(copies, *part.shape[1:])


def value_zeroing_layer(
    block: nn.Module, value: nn.Linear, args: tuple, kwargs: dict, lengths: list[int]
) -> torch.Tensor:
    """Value-zeroing scores of one layer, each row normalised to sum 1: → (B, T, T), zero outside real tokens.

    Mohebbi, Zuidema, Chrupała & Alishahi (2023), "Quantifying Context Mixing in Transformers", EACL 2023:
    for every token j, its value vector v_j = x_j W_V + b_V is set to 0 in every head of the layer and the layer
    (attention, residual, LayerNorm, FFN, LayerNorm) is recomputed from the same input; the score of j for token i
    is the cosine distance between token i's original and altered layer outputs,
    C_ij = 1 − cos(x̃_i, x̃_i^{¬j}), and each row is divided by its sum (as in the authors' code). The diagonal is
    included: zeroing v_i still leaves the residual x_i.

    ``block`` is the encoder layer and ``args``/``kwargs`` what it was called with (hidden states (B, T, D) first,
    then the attention mask); ``value`` is its value projection. For each example, its n real tokens' n
    alterations plus one unaltered copy (the reference, computed by the same call so that both sides share every
    rounding) go through ``block`` in ONE batched call of n + 1 sequences; a temporary hook on ``value`` zeroes
    token j's value in copy j. Head and MLP gates installed on the model apply in these calls too.
    """
    hidden = args[0]
    B, T, _ = hidden.shape
    out = torch.zeros(B, T, T, dtype=torch.float64, device=hidden.device)
    for b, n in enumerate(lengths):
        copies = n + 1
        keep = torch.ones(copies, n, 1, dtype=hidden.dtype, device=hidden.device)
        keep[torch.arange(n), torch.arange(n)] = 0  # copy j: token j's value zeroed; copy n: untouched
        handle = value.register_forward_hook(lambda module, inp, output: output * keep)
        try:
            b_args = tuple(_example_view(a, b, n, B, T, copies) for a in args)
            b_kwargs = {k: _example_view(v, b, n, B, T, copies) for k, v in kwargs.items()}
            result = block(*b_args, **b_kwargs)
        finally:
            handle.remove()
        result = (result[0] if isinstance(result, tuple) else result).double()  # (n + 1, n, D)
        ref, altered = result[n], result[:n]  # (n, D), (n_j, n_i, D)
        cos = (altered * ref).sum(-1) / (altered.norm(dim=-1) * ref.norm(dim=-1)).clamp_min(1e-300)  # (j, i)
        dist = (1.0 - cos).clamp_min(0).T  # row i, column j
        # A row whose every distance is at rounding level (a layer whose heads are all masked: zeroing a value
        # changes nothing) is 0, not noise scaled up to sum 1.
        dist = torch.where(dist.amax(-1, keepdim=True) > NOISE_FLOOR, dist, torch.zeros_like(dist))
        out[b, :n, :n] = row_normalise(dist)
    return out

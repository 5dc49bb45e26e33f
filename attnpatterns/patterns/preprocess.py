"""Turn attention maps of any size (4 to 512 tokens and beyond) into fixed-size classifier inputs.

The original classifier of Kovaleva et al. (2019) saw maps cropped to their real tokens and zero-padded to a fixed
size, so the same pattern occupied a different fraction of the input depending on sentence length and on how much
padding was added. Here every map goes through the same steps, chosen so that the result depends on the *picture*
of the map and not on its token count or padding:

1. **Validate** (:func:`validate_map`): a 2-D square float array with at least 2 rows, finite, non-negative and
   not all zero. Anything else is a :class:`MapError` that says what is wrong.
2. **Strip zero padding** (:func:`strip_padding`): trailing rows and columns that are entirely zero are removed.
   A real attention map never has an all-zero row or column (softmax weights are positive, and norm-weighted
   maps are products of those with positive norms), so this only removes padding, and a padded map gives exactly
   the same features as the unpadded one.
3. **Normalise by the map maximum** (:func:`normalise_map`): divide by the largest value, so the brightest cell is
   1. This is what a human annotator sees (colours scaled per map) and it is the documented normalisation for
   norm-weighted maps, which are not probabilities: their rows do not sum to one and their scale differs from head
   to head by orders of magnitude, so only magnitudes relative to the map's own maximum are kept. For raw maps
   (rows sum to one) it is the same kind of rescaling. The classifier is therefore invariant to multiplying a map
   by any positive constant.
4. **Resize to a fixed grid** (``grid`` x ``grid``; :class:`PreprocessConfig` defaults to 32, and a new classifier
   trains with its kind's grid in :data:`DEFAULT_PREPROCESS`) by adaptive average pooling, i.e. area averaging: a
   512-token map is averaged down, a 12-token map is replicated up. After this step a map and a
   resized (interpolated) copy of it look almost the same, which is what makes the classifier robust to the
   crop/pad/resize treatment of its input.

From the grid, three image channels and a vector of scale-free profiles are computed (all in :func:`features`):

- channel 0, ``map``: the pooled map divided by its maximum;
- channel 1, ``row-max``: the map with every row divided by that row's maximum, pooled and rescaled, so each
  query's strongest target is bright even where the query's total weight is small (diagonals and stripes stand
  out in norm-weighted maps too);
- channel 2, ``log-contrast``: ``log(1 + c * map) / log(1 + c)`` (``c`` = ``contrast``, default 50), which lifts
  faint structure the way a perceptual colour map does (heterogeneous texture under a strong stripe);
- vector, ``diagonal-offset profile`` (``2*grid - 1`` values): the mean of the row-max channel along every
  diagonal offset ``j - i`` of the grid, divided by its maximum; a diagonal map has a sharp peak near offset 0;
- vector, ``column profile`` (``grid`` values): the column means of channel 0 sorted in descending order and
  divided by their sum, i.e. how concentrated attention is on a few columns wherever they are (vertical);
- vector, two normalised entropies in [0, 1] on the grid: the mean entropy of the rows of channel 0 and the entropy
  of its column sums, each divided by ``log(grid)`` (high for spread-out, heterogeneous maps);
- vector, :data:`N_TOKEN_STATISTICS` token-level statistics in [0, 1] (:func:`token_statistics`), the quantities an
  annotator judges at the scale of tokens, where a one-token diagonal is sharp however long the text: the share of
  the map's mass on the offsets -1, 0 and +1; the share on the top 1, 2 and 4 columns, on the first column
  ([CLS]) and on the last ([SEP]); the mean row entropy divided by ``log T``; the fraction of rows whose maximum
  lies on the diagonal band (|i - j| <= 1) and on the top column; the mass left outside the diagonal band and the
  top two columns; and a block score: over every split point, the largest excess of that remainder inside the two
  diagonal blocks over what a uniform map would keep there;
- vector, :data:`N_COVERAGE_STATISTICS` coverage statistics (:func:`coverage_statistics`): how many rows a column or
  the diagonal lights at each colour level of the guideline;
- vector, optional (``size_statistic``): the token count on a log scale (:func:`size_statistic`), since what a
  share means depends on the size of the map (half the mass on the diagonal band is near chance in an 8-token map);
- vector, optional (``lone_column_statistics``): :data:`N_LONE_COLUMN_STATISTICS` counts of the guideline's
  lone-column rule (:func:`lone_column_statistics`): in how many rows one column is the brightest cell, clearly
  so, and visible;
- vector, optional (``band_statistics``): :data:`N_BAND_STATISTICS` counts of the guideline's staircase rule
  (:func:`band_statistics`): how many rows have their brightest cell within two and five cells of the diagonal,
  whether that ridge moves forward from row to row, and how much of the bright weight stays near the line;
- vector, optional (``coarse_image``, side k): the map and row-max channels area-averaged to k x k
  (:func:`coarse_image`), so that the tree model, which sees only the vector, knows where the mass sits;
- vector, optional (``segment_statistics``): :data:`N_SEGMENT_STATISTICS` values from the map *and its segment ids*
  (:func:`segment_statistics`): whether it is a sentence pair and how much of the weight on content tokens stays
  inside the query's own sentence, against what a uniform map would keep there: the guideline's sentence squares
  (§2, ``block``), which an annotator sees from the dashed line between the sentences. Maps given without segment
  ids count as single sentences.

Except for the token-level, lone-column, band and segment statistics, which are shares and fractions of the map's
own size, and the optional size statistic, every feature is computed from the pooled grid, so none depends on the
token count directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

_EPS = 1e-12


class MapError(ValueError):
    """An input map that the classifier cannot use (not square, NaN, negative, ...)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How maps become classifier inputs; saved in every checkpoint so that inference repeats training exactly."""

    grid: int = 32  #: side of the fixed grid every map is pooled to
    contrast: float = 50.0  #: ``c`` of the log-contrast channel
    min_tokens: int = 2  #: smaller maps are refused
    token_statistics: bool = True  #: append :func:`token_statistics` to the vector
    coverage_statistics: bool = True  #: append :func:`coverage_statistics` (checkpoints before 0.2 lack them)
    #: append the map's size, :func:`size_statistic` (off: on the corpus's normed maps it did not raise the
    #: cross-validated macro-F1, 0.784 against 0.789 over three splits; benchmarks/RESULTS.md)
    size_statistic: bool = False
    #: append :func:`lone_column_statistics`, GUIDELINE.md §8's lone-column counts (a checkpoint saved before this
    #: option existed was trained without them; the normed default turns them on, see DEFAULT_PREPROCESS)
    lone_column_statistics: bool = False
    #: append :func:`band_statistics`, GUIDELINE.md §8's staircase counts (off: beside the lone-column statistics they
    #: did not raise the trees' cross-validated macro-F1 on normed maps, 0.776 against 0.777; benchmarks/RESULTS.md)
    band_statistics: bool = False
    #: side k of :func:`coarse_image`, the map and row-max channels pooled to k x k and appended to the vector so that
    #: the tree model sees *where* the mass sits (two diagonal squares of a block, a column in mid-map); 0 = off
    coarse_image: int = 0
    #: append :func:`segment_statistics`, the sentence squares of a pair (needs each map's segment ids; maps given
    #: without them count as single sentences)
    segment_statistics: bool = False

    def __post_init__(self) -> None:
        if self.grid < 8:
            raise ValueError(f"grid must be at least 8, got {self.grid}")
        if self.contrast <= 0:
            raise ValueError(f"contrast must be positive, got {self.contrast}")
        if self.min_tokens < 1:
            raise ValueError(f"min_tokens must be at least 1, got {self.min_tokens}")
        if not 0 <= self.coarse_image <= self.grid:
            raise ValueError(
                f"coarse_image must be between 0 (off) and the grid ({self.grid}), got {self.coarse_image}"
            )

    @property
    def n_channels(self) -> int:
        return 3

    @property
    def n_vector(self) -> int:
        return ((2 * self.grid - 1) + self.grid + 2 + (N_TOKEN_STATISTICS if self.token_statistics else 0)
                + (N_COVERAGE_STATISTICS if self.coverage_statistics else 0) + int(self.size_statistic)
                + (N_LONE_COLUMN_STATISTICS if self.lone_column_statistics else 0)
                + (N_BAND_STATISTICS if self.band_statistics else 0) + 2 * self.coarse_image ** 2
                + (N_SEGMENT_STATISTICS if self.segment_statistics else 0))

    def to_dict(self) -> dict:
        return {"method": "strip-zero-padding/map-max/adaptive-area-pool", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        keys = ("grid", "contrast", "min_tokens", "token_statistics", "coverage_statistics", "size_statistic",
                "lone_column_statistics", "band_statistics", "coarse_image", "segment_statistics")
        # a checkpoint saved before coverage statistics existed was trained without them
        return cls(**{"coverage_statistics": False, **{k: data[k] for k in keys if k in data}})


#: The preprocessing of each kind's classifier when none is chosen (``attnpatterns train``, ``rebuild_defaults``);
#: a trained classifier keeps its own in its checkpoint. Chosen by grouped 5-fold cross-validation on the annotated
#: corpus over three fold splits, the held-out test set unread (``benchmarks/cv_grid.py``; figures in
#: ``benchmarks/RESULTS.md``, "Pattern classifier: pooling grid, long and short maps"): raw maps pool to 64 x 64,
#: better than 32 on each split (mean macro-F1 0.810 against 0.801); normed maps stay at 32, where 64 was better on
#: two splits and worse on one (0.788 against 0.781) and worse on maps of at most 15 tokens. Normed maps add the
#: lone-column statistics, by a rule fixed before the run (RESULTS.md, "the lone-column statistics"): mean macro-F1
#: 0.780 against 0.773 over the same three splits; and the segment statistics, by a rule fixed before the run
#: (RESULTS.md, "the segment statistics"): 0.790 against 0.780. Raw maps do not: the trees alone did not gain from
#: them in cross-validation (mean macro-F1 0.805 against 0.811).
DEFAULT_PREPROCESS = {
    "raw": PreprocessConfig(grid=64),
    "normed": PreprocessConfig(grid=32, lone_column_statistics=True, segment_statistics=True),
}


def default_preprocess(kind: str | None) -> PreprocessConfig:
    """The preprocessing a new classifier of ``kind`` trains with unless told otherwise (:data:`DEFAULT_PREPROCESS`;
    any other kind gets :class:`PreprocessConfig`'s defaults)."""
    return DEFAULT_PREPROCESS.get(kind, PreprocessConfig())


@dataclass
class Features:
    """Classifier inputs for N maps: ``images`` (N, 3, grid, grid) and ``vectors`` (N, n_vector), float32."""

    images: torch.Tensor
    vectors: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index) -> Features:
        return Features(self.images[index], self.vectors[index])

    def to(self, device: torch.device | str) -> Features:
        return Features(self.images.to(device), self.vectors.to(device))

    @staticmethod
    def cat(parts: Sequence[Features]) -> Features:
        return Features(torch.cat([p.images for p in parts]), torch.cat([p.vectors for p in parts]))


def validate_map(array, name: str | None = None, min_tokens: int = 2) -> np.ndarray:
    """Check one map and return it as float32; raise :class:`MapError` saying what is wrong and where."""
    where = f"map {name!r}" if name is not None else "map"
    arr = np.asarray(array)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MapError(f"{where} has dtype {arr.dtype}; expected a numeric (float) array")
    if arr.ndim != 2:
        raise MapError(f"{where} has shape {arr.shape}; an attention map is a 2-D (tokens x tokens) array")
    if arr.shape[0] != arr.shape[1]:
        raise MapError(
            f"{where} is not square (shape {arr.shape}); attention maps are tokens x tokens. "
            "Crop it to the real tokens before classifying"
        )
    if arr.shape[0] < min_tokens:
        raise MapError(f"{where} has {arr.shape[0]} token(s); at least {min_tokens} are needed")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise MapError(f"{where} contains {bad} NaN or infinite value(s); attention maps must be finite")
    if (arr < 0).any():
        raise MapError(
            f"{where} contains negative values (min {float(arr.min()):.3g}); attention weights and "
            "norm-weighted maps are non-negative. Pass the attention map itself, not a difference or a log"
        )
    if not (arr > 0).any():
        raise MapError(f"{where} is all zeros; there is no pattern to classify")
    return arr


def strip_padding(array: np.ndarray) -> np.ndarray:
    """Remove trailing rows and columns that are entirely zero (zero padding); see step 2 of the module doc."""
    nonzero = np.flatnonzero(array.any(axis=1) | array.any(axis=0))
    n = int(nonzero[-1]) + 1 if nonzero.size else array.shape[0]
    return array[:n, :n]


def normalise_map(array: np.ndarray) -> np.ndarray:
    """Divide a map by its maximum (the brightest cell becomes 1); the documented normalisation of both kinds."""
    return array / max(float(array.max()), _EPS)


def prepare_map(array, name: str | None = None, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Steps 1 to 3 for one map: validate, strip zero padding, divide by the maximum. Returns float32 (T, T)."""
    arr = strip_padding(validate_map(array, name, config.min_tokens))
    if arr.shape[0] < config.min_tokens:
        raise MapError(f"map {name!r} has fewer than {config.min_tokens} tokens once zero padding is removed")
    return normalise_map(arr).astype(np.float32, copy=False)


def _max_normalise(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return x / x.amax(dim=dims, keepdim=True).clamp_min(_EPS)


def _diagonal_offset_index(grid: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(grid, device=device)
    offset = (i[None, :] - i[:, None] + grid - 1).reshape(-1)  # (G*G,) in [0, 2G-2]
    counts = torch.bincount(offset, minlength=2 * grid - 1).to(torch.float32)  # cells per diagonal
    return offset, counts


def _normalised_entropy(p: torch.Tensor, size: int) -> torch.Tensor:
    p = p / p.sum(dim=-1, keepdim=True).clamp_min(_EPS)
    return -(p * torch.log(p.clamp_min(_EPS))).sum(dim=-1) / math.log(size)


#: Number of values returned by :func:`token_statistics`.
N_TOKEN_STATISTICS = 13


def token_statistics(x: torch.Tensor) -> torch.Tensor:
    """Scale-free token-level statistics (B, :data:`N_TOKEN_STATISTICS`) of non-negative maps ``x`` (B, T, T)."""
    b, t, _ = x.shape
    mass = x / x.sum(dim=(1, 2), keepdim=True).clamp_min(_EPS)  # (B, T, T), sums to 1
    idx = torch.arange(t, device=x.device)
    offset = idx[None, :] - idx[:, None]  # (T, T): j - i
    diag = [(mass * (offset == o)).sum(dim=(1, 2)) for o in (-1, 0, 1)]  # 3 x (B,)
    cols = mass.sum(dim=1)  # (B, T) column shares
    top = cols.sort(dim=1, descending=True)
    cum = top.values.cumsum(dim=1)
    top_k = [cum[:, min(k, t) - 1] for k in (1, 2, 4)]
    rows = x / x.sum(dim=2, keepdim=True).clamp_min(_EPS)
    row_entropy = _normalised_entropy(x, t).mean(dim=1) if t > 1 else torch.zeros(b, device=x.device)
    argmax = rows.argmax(dim=2)  # (B, T) target of each query's largest weight
    on_band = ((argmax - idx[None, :]).abs() <= 1).float().mean(dim=1)
    on_top = (argmax == top.indices[:, :1]).float().mean(dim=1)
    # the remainder: mass outside the diagonal band and the two strongest columns
    keep = (offset.abs() > 1)[None].expand(b, t, t).clone()
    keep.scatter_(2, top.indices[:, None, :2].expand(b, t, min(2, t)), False)
    rest = mass * keep
    rest_total = rest.sum(dim=(1, 2))
    # block score: over split points s, remainder inside [0,s)^2 + [s,T)^2 beyond the uniform expectation
    cum2 = rest.cumsum(dim=1).cumsum(dim=2)  # (B, T, T) prefix sums
    split = torch.arange(1, t, device=x.device)  # (T-1,)
    corner = cum2[:, split - 1, split - 1]  # (B, T-1) mass of [0,s)x[0,s)
    upper = cum2[:, split - 1, t - 1]  # rows [0,s), all columns
    left = cum2[:, t - 1, split - 1]  # all rows, columns [0,s)
    inside = corner + (rest_total[:, None] - upper - left + corner)  # (B, T-1)
    share = inside / rest_total[:, None].clamp_min(_EPS)
    expected = (split.float() ** 2 + (t - split).float() ** 2) / t**2  # (T-1,)
    block = ((share - expected) / (1 - expected)).clamp(0, 1).amax(dim=1) if t > 1 else torch.zeros(b)
    stats = [*diag, *top_k, cols[:, 0], cols[:, -1], row_entropy, on_band, on_top, rest_total, block]
    return torch.stack(stats, dim=1).clamp(0, 1)  # (B, N_TOKEN_STATISTICS)


#: Number of values returned by :func:`coverage_statistics`.
N_COVERAGE_STATISTICS = 19
#: Brightness levels (fractions of the map maximum) at which a cell counts as lit; with the viridis colour map of
#: the sheets, 0.25 is a clear blue, 0.4 teal and 0.6 green.
COVERAGE_LEVELS = (0.25, 0.4, 0.6)


def coverage_statistics(x: torch.Tensor) -> torch.Tensor:
    """How many rows a stripe or a diagonal covers (B, :data:`N_COVERAGE_STATISTICS`), for maps ``x`` (B, T, T)
    with maximum 1.

    Annotators decide ``vertical+diagonal`` against ``diagonal`` or ``vertical`` by whether the weaker structure is
    lit in most rows (annotations/GUIDELINE.md, section 6), so these are the same quantities, as fractions of rows:

    - for each of three columns, the strongest off-diagonal column, the first ([CLS]) and the last ([SEP]): the
      fraction of the other rows whose cell in that column reaches each level of :data:`COVERAGE_LEVELS`, and the
      fraction where it reaches half the row's maximum (12 values);
    - for the diagonal offset (-1, 0 or +1) whose cells reach half their row's maximum most often: the same four
      fractions along that diagonal (4 values);
    - the fraction of all cells at each of the levels 0.1, 0.25 and 0.4 (3 values): spread-out maps light more.
    """
    b, t, _ = x.shape
    idx = torch.arange(t, device=x.device)
    row_max = x.amax(dim=2)  # (B, T)
    off_band = ((idx[None, :] - idx[:, None]).abs() > 1).to(x.dtype)
    strongest = (x * off_band).mean(dim=1).argmax(dim=1)  # (B,)
    out = []
    for col in (strongest, torch.zeros_like(strongest), torch.full_like(strongest, t - 1)):
        values = x.gather(2, col[:, None, None].expand(b, t, 1)).squeeze(2)  # (B, T): every row's cell in col
        other = (idx[None, :] != col[:, None]).to(x.dtype)  # the column's own row does not count
        n_rows = other.sum(dim=1).clamp_min(1)
        for level in COVERAGE_LEVELS:
            out.append(((values >= level).to(x.dtype) * other).sum(dim=1) / n_rows)
        out.append(((values >= 0.5 * row_max).to(x.dtype) * other).sum(dim=1) / n_rows)
    per_offset = []
    for o in (-1, 0, 1):
        if t <= abs(o):
            continue
        diag = torch.diagonal(x, offset=o, dim1=1, dim2=2)  # (B, T - |o|): x[i, i + o]
        rows = idx[max(0, -o): t - max(0, o)]
        stats = [(diag >= level).to(x.dtype).mean(dim=1) for level in COVERAGE_LEVELS]
        stats.append((diag >= 0.5 * row_max[:, rows]).to(x.dtype).mean(dim=1))
        per_offset.append(torch.stack(stats, dim=1))  # (B, 4)
    offsets = torch.stack(per_offset, dim=1)  # (B, n_offsets, 4)
    best = offsets[..., -1].argmax(dim=1)  # (B,)
    out.extend(offsets[torch.arange(b, device=x.device), best].unbind(dim=1))
    out.extend((x >= level).to(x.dtype).mean(dim=(1, 2)) for level in (0.1, 0.25, 0.4))
    return torch.stack(out, dim=1).clamp(0, 1)  # (B, N_COVERAGE_STATISTICS)


def _content_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The content rows of maps ``x`` (B, T, T) for the guideline's row counts, without tokens: every row but the
    first (the ``[CLS]`` query row) and the last (the final ``[SEP]``), or all rows when that leaves fewer than two;
    returns the rows (B, R, T) and their indices in the map (R,)."""
    t = x.shape[1]
    first = 1 if t >= 4 else 0
    return x[:, first : t - first], torch.arange(first, t - first, device=x.device)


#: Number of values returned by :func:`lone_column_statistics`.
N_LONE_COLUMN_STATISTICS = 5
#: Brightness (fraction of the map maximum) from which a cell is *visible* (dark violet) and a stripe cell counts
#: (indigo blue), as in :mod:`attnpatterns.annotation.columns`.
LONE_COLUMN_LEVELS = (0.1, 0.2)
#: How much brighter than every other cell of its row (in fractions of the map maximum) a column's cell must be to be
#: *clearly* the brightest of the row (GUIDELINE.md §8: "a tie by eye does not count").
CLEAR_MARGIN = 0.1


def lone_column_statistics(x: torch.Tensor) -> torch.Tensor:
    """GUIDELINE.md §8's lone-column counts (B, :data:`N_LONE_COLUMN_STATISTICS`) for maps ``x`` (B, T, T) with
    maximum 1.

    §8 ("A lone column lit in part of the rows") calls a map ``vertical`` when one column is visible in at least half
    of the content rows and clearly the brightest cell of its row in at least 40% of them, and ``heterogeneous``
    when texture is about as bright in more than 60%. The classifier sees no tokens, so the content rows here are
    every row but the first (the ``[CLS]`` query row) and the last (the final ``[SEP]``); all rows when that leaves
    fewer than two. The *dominant* column is the one that holds the largest cell (ties count for every tied
    column) of the most content rows; ties between columns go to the more visible one, then the leftmost, as in
    :func:`attnpatterns.annotation.columns.dominant_column`. The values, each a share of the content rows:

    - the rows the dominant column is the largest cell of (ties count);
    - the rows where it is *clearly* the largest: at least :data:`CLEAR_MARGIN` above every other cell of the row;
    - the rows where it is visible (>= 0.1) and where it is a stripe cell (>= 0.2), :data:`LONE_COLUMN_LEVELS`;
    - the rows the runner-up column (the most dominant of the others) is the largest cell of: two stripes.
    """
    b, t, _ = x.shape
    rows, _ = _content_rows(x)  # (B, R, T)
    r = rows.shape[1]
    is_max = rows >= rows.amax(dim=2, keepdim=True)  # (B, R, T)
    dominant = is_max.sum(dim=1)  # (B, T) rows each column is the largest cell of (integers)
    visible = (rows >= LONE_COLUMN_LEVELS[0]).sum(dim=1)  # (B, T)
    key = dominant * (r + 1) + visible  # orders columns by (dominant, visible); argmax takes the leftmost of ties
    best = key.argmax(dim=1)  # (B,)
    pick = best[:, None, None].expand(b, r, 1)
    cell = rows.gather(2, pick).squeeze(2)  # (B, R): the dominant column's cell in every content row
    others = rows.scatter(2, pick, float("-inf")).amax(dim=2) if t > 1 else torch.zeros_like(cell)  # (B, R)
    clear = (cell >= others + CLEAR_MARGIN).to(x.dtype).mean(dim=1)
    runner_up = (dominant.scatter(1, best[:, None], -1).amax(dim=1).clamp_min(0) if t > 1
                 else torch.zeros(b, dtype=dominant.dtype, device=x.device))
    stats = [dominant.gather(1, best[:, None]).squeeze(1) / r, clear,
             *[(cell >= level).to(x.dtype).mean(dim=1) for level in LONE_COLUMN_LEVELS], runner_up / r]
    return torch.stack([s.to(x.dtype) for s in stats], dim=1).clamp(0, 1)  # (B, N_LONE_COLUMN_STATISTICS)


#: Number of values returned by :func:`band_statistics`.
N_BAND_STATISTICS = 4
#: GUIDELINE.md §8: a piece of a band lies at most about five cells from the diagonal; six or more is not a band.
BAND_REACH = 5
#: Brightness (fraction of the map maximum) of the cells :func:`band_statistics` weighs as "bright" (teal-blue).
BRIGHT_LEVEL = 0.4


def band_statistics(x: torch.Tensor) -> torch.Tensor:
    """GUIDELINE.md §8's staircase counts (B, :data:`N_BAND_STATISTICS`) for maps ``x`` (B, T, T) with maximum 1.

    §8 calls a staircase of short pieces ``diagonal`` only when a ridge can be followed from piece to piece and no
    piece strays more than about five cells from the diagonal (:data:`BAND_REACH`); pieces with dark gaps are
    phrase squares (``block``) and scattered hot spots ``heterogeneous``. Over the content rows (every row but the
    first and the last, as in :func:`lone_column_statistics`), with ``a_i`` the column of row i's largest cell (the
    leftmost of ties):

    - the share of rows with ``|a_i - i| <= 2`` and with ``|a_i - i| <= 5``: the brightest cell on a band;
    - the share of consecutive row pairs (i, i + 1) both within five cells whose ridge moves forward by 0 to 5 cells
      (``0 <= a_{i+1} - a_i <= 5``): pieces that follow one another;
    - of the content cells at or above :data:`BRIGHT_LEVEL`, the share within five cells of the diagonal ("little
      else" off the line; 0 when no content cell is that bright).
    """
    b, t, _ = x.shape
    rows, i = _content_rows(x)  # (B, R, T) and the rows' own indices
    r = rows.shape[1]
    a = rows.argmax(dim=2)  # (B, R)
    reach = (a - i[None]).abs()
    near2 = (reach <= 2).to(x.dtype).mean(dim=1)
    near5 = reach <= BAND_REACH
    if r > 1:
        step = a[:, 1:] - a[:, :-1]
        follows = near5[:, 1:] & near5[:, :-1] & (step >= 0) & (step <= BAND_REACH)
        ridge = follows.to(x.dtype).mean(dim=1)
    else:
        ridge = torch.zeros(b, dtype=x.dtype, device=x.device)
    j = torch.arange(t, device=x.device)
    close = ((j[None, :] - i[:, None]).abs() <= BAND_REACH)[None]  # (1, R, T)
    bright = rows >= BRIGHT_LEVEL
    n_bright = bright.sum(dim=(1, 2))
    on_band = (bright & close).sum(dim=(1, 2)).to(x.dtype) / n_bright.clamp_min(1).to(x.dtype)
    stats = [near2, near5.to(x.dtype).mean(dim=1), ridge, on_band]
    return torch.stack(stats, dim=1).clamp(0, 1)  # (B, N_BAND_STATISTICS)


#: Token count that :func:`size_statistic` maps to 1 (BERT's longest input).
SIZE_SCALE = 512


def size_statistic(x: torch.Tensor) -> torch.Tensor:
    """The token count T of maps ``x`` (B, T, T) on a log scale, ``min(1, log T / log 512)`` (B, 1).

    Every other statistic is a share or a fraction of the map's own size, but what a share means depends on that
    size: a uniform map puts about 3 / T of its mass on the diagonal band and at least 1 / T on its top column, so
    half the mass on the band is barely above chance in an 8-token map and striking in a 64-token one. An annotator
    sees the size; with this value the classifier can too. It is the same for every map of a batch.
    """
    t = x.shape[-1]
    value = min(1.0, math.log(t) / math.log(SIZE_SCALE))
    return torch.full((x.shape[0], 1), value, dtype=x.dtype, device=x.device)


#: Number of values returned by :func:`segment_statistics`.
N_SEGMENT_STATISTICS = 6


def segment_boundaries(segments: torch.Tensor) -> torch.Tensor:
    """The positions (B, T) that are not content tokens, from the segment ids alone: the first token (``[CLS]``)
    and the last token of every segment (its ``[SEP]``), which is how BERT-style tokenisers lay out one sentence
    (``[CLS] A [SEP]``) and a pair (``[CLS] A [SEP] B [SEP]``)."""
    last = torch.ones_like(segments, dtype=torch.bool)
    last[:, :-1] = segments[:, 1:] != segments[:, :-1]
    last[:, 0] = True
    return last


def segment_statistics(x: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Sentence-square statistics (B, :data:`N_SEGMENT_STATISTICS`) for maps ``x`` (B, T, T) with their segment ids
    ``segments`` (B, T), integers (0 for sentence A, 1 for sentence B).

    GUIDELINE.md §2 calls a map ``block`` when the weight stays inside square blocks on the diagonal, in a pair the
    two sentences' squares, which the rendered map marks with a dashed line; the map alone does not say where that
    line is. With p the map divided by its total, C the content columns (every token but the first and the last of
    each segment, :func:`segment_boundaries`) and s(i) the segment of token i, the values are:

    1. ``pair``: 1 if the map holds two segments (any id differs from the first token's), else 0;
    2. ``within``: Σ_{i, j∈C, s(j)=s(i)} p_ij / Σ_{i, j∈C} p_ij, the share of the weight on content columns that
       stays in the query's own segment;
    3. ``chance``: (1/T) Σ_i |{j∈C : s(j)=s(i)}| / |C|, what ``within`` would be if every row spread its weight
       evenly over the content columns;
    4. ``lift``: ``within`` − ``chance``;
    5. ``worst``: min over segments S of Σ_{i∈S, j∈C∩S} p_ij / Σ_{i∈S, j∈C} p_ij, ``within`` of the segment
       that keeps the least (a block needs both squares);
    6. ``share``: the fraction of the tokens outside the first token's segment.

    For a single sentence (one segment) or a pair without content tokens, values 2–6 are −1. A row set with no
    weight on content columns counts as keeping none of it.
    """
    b = x.shape[0]
    seg = segments.to(device=x.device, dtype=torch.long)
    p = x / x.sum(dim=(1, 2), keepdim=True).clamp_min(_EPS)
    content = (~segment_boundaries(seg)).to(x.dtype)  # (B, T) columns that count
    same = (seg[:, :, None] == seg[:, None, :]).to(x.dtype)  # (B, T, T)
    on_content = p * content[:, None, :]  # (B, T, T)
    row_total = on_content.sum(dim=2)  # (B, T) each row's weight on content columns
    row_within = (on_content * same).sum(dim=2)  # (B, T) ... of it in the row's own segment
    within = row_within.sum(dim=1) / row_total.sum(dim=1).clamp_min(_EPS)
    n_content = content.sum(dim=1)  # (B,)
    chance = (same * content[:, None, :]).sum(dim=2).mean(dim=1) / n_content.clamp_min(1)
    worst = torch.full((b,), float("inf"), dtype=x.dtype, device=x.device)
    for value in torch.unique(seg).tolist():
        rows = (seg == value).to(x.dtype)  # (B, T)
        present = rows.sum(dim=1) > 0
        kept = (row_within * rows).sum(dim=1) / (row_total * rows).sum(dim=1).clamp_min(_EPS)
        worst = torch.where(present, torch.minimum(worst, kept), worst)
    other = seg != seg[:, :1]  # (B, T) tokens outside the first token's segment
    pair = other.any(dim=1)
    share = other.to(x.dtype).mean(dim=1)
    stats = torch.stack([within, chance, within - chance, worst, share], dim=1)
    usable = (pair & (n_content > 0))[:, None]
    stats = torch.where(usable, stats, torch.full_like(stats, -1.0))
    return torch.cat([pair.to(x.dtype)[:, None], stats], dim=1)


def coarse_image(base: torch.Tensor, row_max: torch.Tensor, k: int) -> torch.Tensor:
    """The pooled map and row-max channels (B, G, G) each, area-averaged to k x k and each divided by its own
    maximum, flattened row by row: (B, 2 k²), the map's cells first. The other vector features are profiles and
    counts that forget where along the rows and columns the mass sits; these do not."""
    small = F.adaptive_avg_pool2d(torch.stack([base, row_max], dim=1), k)  # (B, 2, k, k)
    return _max_normalise(small, (2, 3)).reshape(base.shape[0], 2 * k * k)


def features(
    maps: torch.Tensor, config: PreprocessConfig = PreprocessConfig(), segments: torch.Tensor | None = None
) -> Features:
    """Step 4 and the feature channels for a batch of prepared maps of one size, ``maps`` (B, T, T).

    ``maps`` must already have been through :func:`prepare_map` (or at least be non-negative with a positive
    maximum). ``segments`` (B, T), the maps' segment ids, feed :func:`segment_statistics` when the config asks for
    them; None counts every map as a single sentence. Runs on the device of ``maps``.
    """
    if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
        raise MapError(f"expected a batch of square maps (B, T, T), got shape {tuple(maps.shape)}")
    g = config.grid
    x = _max_normalise(maps.to(torch.float32), (1, 2))  # (B, T, T), max 1
    rows = x / x.amax(dim=2, keepdim=True).clamp_min(_EPS)  # (B, T, T), each row max 1
    pooled = F.adaptive_avg_pool2d(torch.stack([x, rows], dim=1), g)  # (B, 2, G, G)
    pooled = _max_normalise(pooled, (2, 3))
    base, row_max = pooled[:, 0], pooled[:, 1]  # (B, G, G) each
    contrast = torch.log1p(config.contrast * base) / math.log1p(config.contrast)
    images = torch.stack([base, row_max, contrast], dim=1)  # (B, 3, G, G)

    offset, counts = _diagonal_offset_index(g, maps.device)
    diag = torch.zeros(maps.shape[0], 2 * g - 1, device=maps.device)
    diag.index_add_(1, offset, row_max.reshape(maps.shape[0], -1))  # (B, 2G-1) sums along diagonals
    diag = _max_normalise(diag / counts, (1,))
    col_mean = base.mean(dim=1)  # (B, G)
    col_profile = col_mean.sort(dim=1, descending=True).values
    col_profile = col_profile / col_profile.sum(dim=1, keepdim=True).clamp_min(_EPS)
    row_entropy = _normalised_entropy(base, g).mean(dim=1, keepdim=True)  # (B, 1)
    col_entropy = _normalised_entropy(col_mean, g).unsqueeze(1)  # (B, 1)
    parts = [diag, col_profile, row_entropy, col_entropy]
    if config.token_statistics:
        parts.append(token_statistics(x))  # (B, N_TOKEN_STATISTICS)
    if config.coverage_statistics:
        parts.append(coverage_statistics(x))  # (B, N_COVERAGE_STATISTICS)
    if config.size_statistic:
        parts.append(size_statistic(x))  # (B, 1)
    if config.lone_column_statistics:
        parts.append(lone_column_statistics(x))  # (B, N_LONE_COLUMN_STATISTICS)
    if config.band_statistics:
        parts.append(band_statistics(x))  # (B, N_BAND_STATISTICS)
    if config.coarse_image:
        parts.append(coarse_image(base, row_max, config.coarse_image))  # (B, 2 k²)
    if config.segment_statistics:
        if segments is None:
            segments = torch.zeros(maps.shape[:2], dtype=torch.long, device=maps.device)
        parts.append(segment_statistics(x, segments))  # (B, N_SEGMENT_STATISTICS)
    vectors = torch.cat(parts, dim=1)  # (B, n_vector)
    return Features(images.contiguous(), vectors.contiguous())


def prepared_segments(maps: Sequence, segments: Sequence | None, names: Sequence[str] | None, sizes: list[int]):
    """Each map's segment ids, checked against the map and cropped as :func:`prepare_map` cropped it to ``sizes``
    (zero padding stripped), as int64 arrays; None for a map without ids (a single sentence), all None when
    ``segments`` is None."""
    if segments is None:
        return [None] * len(maps)
    if len(segments) != len(maps):
        raise MapError(f"{len(segments)} segment-id lists for {len(maps)} maps; give one per map (or None)")
    out = []
    for i, (arr, seg, size) in enumerate(zip(maps, segments, sizes)):
        if seg is None:
            out.append(None)
            continue
        seg = np.asarray(seg, dtype=np.int64).reshape(-1)
        full = np.asarray(arr).shape[0]
        if seg.shape[0] != full:
            where = f"map {names[i]!r}" if names is not None else f"map {i}"
            raise MapError(f"{where} has {full} tokens but {seg.shape[0]} segment ids; give one id per token")
        out.append(seg[:size])  # zero padding stripped from the map: its ids go too
    return out


def preprocess_maps(
    maps: Sequence,
    config: PreprocessConfig = PreprocessConfig(),
    names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    segments: Sequence | None = None,
) -> Features:
    """Validate, prepare and featurise maps of any sizes; the result keeps the input order.

    Maps are grouped by their (unpadded) size so that each group is featurised as one batch on ``device``.
    ``segments``, one list of segment ids per map (or None for a map without them), is read only when ``config``
    asks for :func:`segment_statistics`; maps without segment ids count as single sentences.
    """
    if len(maps) == 0:
        raise MapError("no maps to preprocess")
    prepared = [prepare_map(m, None if names is None else names[i], config) for i, m in enumerate(maps)]
    seg = prepared_segments(maps, segments if config.segment_statistics else None, names,
                            [a.shape[0] for a in prepared])
    by_size: dict[int, list[int]] = {}
    for index, arr in enumerate(prepared):
        by_size.setdefault(arr.shape[0], []).append(index)
    g, n_vec = config.grid, config.n_vector
    images = torch.empty(len(prepared), config.n_channels, g, g, device=device)
    vectors = torch.empty(len(prepared), n_vec, device=device)
    for size, indices in by_size.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.from_numpy(np.stack([prepared[i] for i in chunk])).to(device)  # (b, T, T)
            ids = None
            if config.segment_statistics:
                zeros = np.zeros(size, dtype=np.int64)
                ids = torch.from_numpy(np.stack([zeros if seg[i] is None else seg[i] for i in chunk])).to(device)
            feats = features(batch, config, ids)
            where = torch.tensor(chunk, device=device)
            images[where] = feats.images
            vectors[where] = feats.vectors
    return Features(images, vectors)

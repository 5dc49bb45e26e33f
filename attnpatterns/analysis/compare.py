"""Compare the pattern types of super-survivor heads with the full model, per task and map kind.

Conditions (as in Prasanna et al. 2020): fine-tuned or pretrained weights x all heads (the full model) or
super-survivors (the pruned, not retrained, model with only the super-survivor heads kept). For each task and
map kind, :func:`compare` computes

* the distribution of the five pattern types over examples x heads in every condition given, with bootstrap
  intervals over heads;
* per-head majority types and the distribution by layer;
* tests with the head as the unit (see :mod:`attnpatterns.analysis.stats`), for these comparisons:

  ``survivors_vs_rest``  full-model maps only: super-survivor heads vs every other head. Were the heads that
                         survive pruning different to begin with? Same maps on both sides, so any difference
                         is about *which* heads survive.
  ``pruned_vs_rest``     the paper's question: super-survivors in the pruned model vs the *other* heads of the
                         full model. We test against the rest rather than all heads because a permutation test
                         needs disjoint groups of exchangeable units -- "all heads" contains the survivors
                         themselves, which would put the same heads on both sides and dilute any difference.
  ``pruning_effect``     paired, the super-survivor heads in the pruned model vs the same heads in the full
                         model: does removing the other heads change the survivors' patterns?
  ``finetuning_effect``  paired, every head with fine-tuned vs pretrained weights (when both are given).

  each with five per-type differences in pooled proportion, an omnibus total variation distance, and (for the
  unpaired comparisons) a test on per-head majority types;
* the correlation between "a map is heterogeneous" and "its head is a super-survivor" over the full model's
  maps.

P-values are adjusted for multiple comparisons within each family = (comparison, weights, test) across tasks,
kinds and types, with Holm's method by default (valid under any dependence between the tests).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from attnpatterns import __version__
from attnpatterns.analysis.distributions import HeadCounts, head_counts, layer_distribution, majority_frame
from attnpatterns.analysis.stats import (
    CORRECTION_METHODS,
    adjust_pvalues,
    bootstrap_difference,
    bootstrap_proportions,
    heterogeneity_survival_correlation,
    majority_test,
    paired_permutation_test_heads,
    permutation_test_heads,
)
from attnpatterns.analysis.tables import (
    AnalysisInputError,
    PatternTable,
    Survivors,
    check_full_table,
    check_same_examples,
    check_same_model,
    check_survivor_table,
)
from attnpatterns.constants import (  # noqa: F401 (the conditions, re-exported for the report)
    ALL_HEADS,
    CONDITIONS,
    FINETUNED,
    LAYER_KINDS,
    MAP_KINDS,
    PATTERN_TYPES,
    PRETRAINED,
    SUPER_SURVIVORS,
)

# Output files of a comparison folder.
#: Run type in the manifest of an `attnpatterns compare` folder.
COMPARISON_RUN = "comparison"
COMPARISON_FILE = "comparison.json"
DISTRIBUTIONS_FILE = "distributions.csv"
TESTS_FILE = "tests.csv"
CORRELATIONS_FILE = "correlations.csv"
HEAD_MAJORITY_FILE = "head_majority.csv"
LAYERS_FILE = "layer_distribution.csv"
FIGURES_DIR = "figures"

#: Comparison id -> (group A, group B, question), for tables and the report.
COMPARISONS: dict[str, tuple[str, str, str]] = {
    "survivors_vs_rest": (
        "super-survivor heads, full-model maps",
        "other heads, full-model maps",
        "In the unpruned model, do the heads that later survive differ from the others?",
    ),
    "pruned_vs_rest": (
        "super-survivors, pruned model",
        "other heads, full model",
        "Do super-survivors in the pruned model have different patterns from the rest of the model?",
    ),
    "pruning_effect": (
        "super-survivors, pruned model",
        "same heads, full model",
        "Does removing the other heads change the surviving heads' patterns? (paired by head)",
    ),
    "finetuning_effect": (
        "all heads, fine-tuned",
        "all heads, pretrained",
        "Does fine-tuning change the pattern distribution? (paired by head)",
    ),
}


def condition_label(weights: str, heads: str) -> str:
    return f"{weights}, {heads}"


def _survivors_info(survivors: Survivors) -> dict:
    """The survivors as ``comparison.json`` records them: the summary of ``survivors.json`` and where it was read."""
    data = survivors.to_dict()
    info = {key: data[key] for key in ("model", "task", "seeds", "n_layers", "n_heads", "super_survivor_heads")}
    info["super_survivor_mlps"] = list(survivors.mlps or [])
    info["head_survival_frequency"] = data["head_survival_frequency"]
    info["fleiss_kappa_heads"] = survivors.kappa
    info["source"] = survivors.source
    return info


@dataclass
class CompareConfig:
    """Settings of :func:`compare`. Validated on construction."""

    n_permutations: int = 10_000
    n_bootstrap: int = 5_000
    confidence_level: float = 0.95
    seed: int = 0
    correction: str = "holm"
    kinds: tuple[str, ...] | None = None  # None: every kind present in all tables of a task
    require_same_examples: bool = True

    def __post_init__(self) -> None:
        if self.n_permutations < 1:
            raise ValueError("n_permutations must be at least 1")
        if self.n_bootstrap < 10:
            raise ValueError("n_bootstrap must be at least 10")
        if not 0 < self.confidence_level < 1:
            raise ValueError("confidence_level must lie strictly between 0 and 1")
        if self.correction not in CORRECTION_METHODS:
            raise ValueError(
                f"unknown correction {self.correction!r}; choose one of {', '.join(CORRECTION_METHODS)}"
            )
        if self.kinds is not None:
            self.kinds = tuple(self.kinds)
            unknown = [k for k in self.kinds if k not in MAP_KINDS]
            if unknown or not self.kinds:
                raise ValueError(f"unknown map kind(s) {unknown}; choose from {', '.join(MAP_KINDS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kinds"] = None if self.kinds is None else list(self.kinds)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "CompareConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class TaskInputs:
    """Everything compared for one task. Only ``full`` and ``survivors`` are required; the survivors-only
    comparisons (``survivors_vs_rest`` and the correlation) need nothing else."""

    task: str
    survivors: Survivors
    full: PatternTable
    survivors_table: PatternTable | None = None
    pretrained_full: PatternTable | None = None
    pretrained_survivors: PatternTable | None = None

    def tables(self) -> dict[tuple[str, str], PatternTable]:
        given = {
            (FINETUNED, ALL_HEADS): self.full,
            (FINETUNED, SUPER_SURVIVORS): self.survivors_table,
            (PRETRAINED, ALL_HEADS): self.pretrained_full,
            (PRETRAINED, SUPER_SURVIVORS): self.pretrained_survivors,
        }
        return {cond: t for cond, t in given.items() if t is not None}


#: Columns of the result CSVs that hold names (read back as strings whatever they look like).
_TEXT_COLUMNS = ("task", "kind", "weights", "heads", "condition", "type", "comparison", "group_a", "group_b", "test",
                 "method", "majority_type")


@dataclass
class ComparisonResult:
    """Tidy tables of a comparison (one row per task x kind x condition x ...) and what produced them."""

    distributions: pd.DataFrame
    tests: pd.DataFrame
    correlations: pd.DataFrame
    heads: pd.DataFrame
    layers: pd.DataFrame
    tasks: dict[str, dict]
    config: CompareConfig
    notes: list[str] = field(default_factory=list)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def summary(self) -> str:
        """One line per task and kind: heterogeneous share in the full model and in the super-survivors."""
        lines = []
        dist, tests = self.distributions, self.tests
        for name in self.task_names:
            for kind in self.tasks[name]["kinds"]:
                sel = dist[
                    (dist["task"] == name)
                    & (dist["kind"] == kind)
                    & (dist["type"] == "heterogeneous")
                    & (dist["weights"] == FINETUNED)
                ]
                shares = ", ".join(f"{row.heads} {row.proportion:.1%}" for row in sel.itertuples())
                line = f"{name} {kind}: heterogeneous {shares}"
                if not tests.empty:
                    t = tests[
                        (tests["task"] == name)
                        & (tests["kind"] == kind)
                        & (tests["weights"] == FINETUNED)
                        & (tests["test"] == "difference")
                        & (tests["type"] == "heterogeneous")
                    ]
                    pick = t[t["comparison"] == "pruned_vs_rest"]
                    pick = pick if not pick.empty else t[t["comparison"] == "survivors_vs_rest"]
                    if not pick.empty:
                        row = pick.iloc[0]
                        p = row["p_adjusted"]
                        tested = (f"adj. p = {p:.3g}" if not math.isnan(p)
                                  else "not testable: no map, or every map, heterogeneous")
                        line += f"; {row['comparison']} {100 * row['estimate']:+.1f} pp, {tested}"
                lines.append(line)
        return "\n".join(lines)

    def save(self, folder: str | Path) -> Path:
        """Write the CSV tables and ``comparison.json`` into ``folder``; returns the JSON's path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self._frames().items():
            frame.to_csv(folder / name, index=False)
        meta = {
            "format": "attnpatterns.comparison/1",
            "attnpatterns_version": __version__,
            "config": self.config.to_dict(),
            "tasks": self.tasks,
            "notes": self.notes,
            "files": sorted(self._frames()),
        }
        path = folder / COMPARISON_FILE
        path.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "ComparisonResult":
        """Read a folder written by :meth:`save` (or the ``comparison.json`` in it)."""
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        meta_path = folder / COMPARISON_FILE
        if not meta_path.is_file():
            raise AnalysisInputError(
                f"{folder} holds no {COMPARISON_FILE}; run `attnpatterns compare -o {folder}` first"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise AnalysisInputError(f"{meta_path} is not valid JSON ({err})") from err
        frames = {}
        for name in (DISTRIBUTIONS_FILE, TESTS_FILE, CORRELATIONS_FILE, HEAD_MAJORITY_FILE, LAYERS_FILE):
            if not (folder / name).is_file():
                raise AnalysisInputError(f"{folder} lacks {name}; rerun `attnpatterns compare`")
            try:
                # names stay strings (a task called "007" or "2" must not come back as a number)
                frames[name] = pd.read_csv(folder / name, keep_default_na=False, na_values=[""],
                                           dtype={c: str for c in _TEXT_COLUMNS})
            except pd.errors.EmptyDataError:
                frames[name] = pd.DataFrame()
        return cls(
            distributions=frames[DISTRIBUTIONS_FILE],
            tests=frames[TESTS_FILE],
            correlations=frames[CORRELATIONS_FILE],
            heads=frames[HEAD_MAJORITY_FILE],
            layers=frames[LAYERS_FILE],
            tasks=meta.get("tasks", {}),
            config=CompareConfig.from_dict(meta.get("config", {})),
            notes=list(meta.get("notes", [])),
        )

    def _frames(self) -> dict[str, pd.DataFrame]:
        return {
            DISTRIBUTIONS_FILE: self.distributions,
            TESTS_FILE: self.tests,
            CORRELATIONS_FILE: self.correlations,
            HEAD_MAJORITY_FILE: self.heads,
            LAYERS_FILE: self.layers,
        }


# ------------------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------------------


def check_task_inputs(inputs: TaskInputs, config: CompareConfig | None = None) -> tuple[list[str], list[str]]:
    """Check that the tables and survivors of a task describe the same model; return (kinds, notes).

    Raises :class:`AnalysisInputError` on a mismatch; notes are things worth knowing that do not invalidate
    it.
    """
    config = config or CompareConfig()
    s = inputs.survivors
    notes: list[str] = []
    if s.task and not _same_task(s.task, inputs.task):
        raise AnalysisInputError(
            f"task {inputs.task!r} was given survivors of task {s.task!r} ({s.source}); pass the "
            f"survivors of {inputs.task!r}, or name the task {s.task!r}"
        )
    check_full_table(inputs.full, s, "fine-tuned full-model")
    if inputs.survivors_table is not None:
        check_survivor_table(inputs.survivors_table, s, "fine-tuned super-survivors")
        check_same_model(inputs.full, inputs.survivors_table, "fine-tuned")
    if inputs.pretrained_full is not None:
        check_full_table(inputs.pretrained_full, s, "pretrained full-model")
    if inputs.pretrained_survivors is not None:
        check_survivor_table(inputs.pretrained_survivors, s, "pretrained super-survivors")
        if inputs.pretrained_full is not None:
            check_same_model(inputs.pretrained_full, inputs.pretrained_survivors, "pretrained")
    tables = inputs.tables()
    ft_model, pt_model = (
        inputs.full.model,
        next((t.model for (w, _), t in tables.items() if w == PRETRAINED and t.model), None),
    )
    if ft_model and pt_model and ft_model == pt_model:
        notes.append(
            f"{inputs.task}: the fine-tuned and pretrained tables name the same model ({ft_model}); check "
            "that the fine-tuned tables really come from the fine-tuned checkpoint"
        )
    names = {n for t in tables.values() for n in (t.model, t.model_name) if n}
    if s.model and names and s.model not in names:
        notes.append(
            f"{inputs.task}: survivors.json names model {s.model!r}, which no table names "
            f"({', '.join(sorted({t.model_name or t.model for t in tables.values() if t.model}))})"
        )
    if _classifiers_differ(tables.values()):
        notes.append(f"{inputs.task}: the tables were labelled by different classifier checkpoints")

    # A super-survivors table of a task without super-survivors is empty; it constrains neither kinds nor
    # examples.
    tables = {c: t for c, t in tables.items() if len(t.maps) or c[1] == ALL_HEADS}
    present = [set(t.kinds) for t in tables.values()]
    common = [k for k in MAP_KINDS if all(k in p for p in present)]
    if config.kinds is not None:
        for kind in config.kinds:
            lacking = [condition_label(*c) for c, t in tables.items() if kind not in t.kinds]
            if lacking:
                raise AnalysisInputError(
                    f"{inputs.task}: no {kind} maps in the {', '.join(lacking)} table(s); classify {kind} "
                    f"maps or choose --kind from {', '.join(common) or 'nothing (no kind is in every table)'}"
                )
        kinds = list(config.kinds)
    else:
        kinds = common
        dropped = sorted(set().union(*present) - set(common))
        if dropped:
            notes.append(f"{inputs.task}: {', '.join(dropped)} maps are not in every table and were left out")
    if not kinds:
        raise AnalysisInputError(f"{inputs.task}: no map kind is present in every table; nothing to compare")
    for kind in kinds:
        named = [(condition_label(*c), t) for c, t in tables.items()]
        if config.require_same_examples:
            check_same_examples(named, kind)
        elif len({frozenset(t.example_ids(kind)) for _, t in named}) > 1:
            notes.append(f"{inputs.task}: the conditions cover different examples for {kind} maps")
    return kinds, notes


def _same_task(recorded: str, given: str) -> bool:
    """Task names compared loosely: "SST-2", "sst2" and "sst_2" are the same task, and so is the
    "heads_mlps/SST-2" that ``attnpatterns survivors`` names a task found in the published mask layout."""

    def norm(name: str) -> str:
        return re.sub(r"[^a-z0-9]", "", str(name).lower())

    return norm(given) in (norm(recorded), norm(str(recorded).replace("\\", "/").split("/")[-1]))


def _classifiers_differ(tables) -> bool:
    """True when two tables name different classifier weights for the same map kind.

    ``attnpatterns classify`` records ``checkpoint`` as {kind: {path, weights_sha256, ...}}; the weights' hash
    is compared when present (paths differ between machines), else the whole record.
    """
    seen: dict[str, str] = {}
    for table in tables:
        info = table.classifier
        if not isinstance(info, dict):
            continue
        per_kind = info if all(isinstance(v, dict) for v in info.values()) else {"*": info}
        for kind, record in per_kind.items():
            key = record.get("weights_sha256") or json.dumps(record, sort_keys=True, default=str)
            if seen.setdefault(kind, key) != key:
                return True
    return False


def compare(tasks: Sequence[TaskInputs], config: CompareConfig | None = None) -> ComparisonResult:
    """Run the whole comparison for one or more tasks (see the module docstring for what is computed)."""
    config = config or CompareConfig()
    if not tasks:
        raise AnalysisInputError("no task to compare")
    names = [t.task for t in tasks]
    if len(set(names)) != len(names):
        raise AnalysisInputError(f"task names must be unique, got {names}")
    parts = [_compare_task(t, config) for t in tasks]
    result = ComparisonResult(
        distributions=_concat([p["distributions"] for p in parts]),
        tests=_concat([p["tests"] for p in parts]),
        correlations=_concat([p["correlations"] for p in parts]),
        heads=_concat([p["heads"] for p in parts]),
        layers=_concat([p["layers"] for p in parts]),
        tasks={p["task"]: p["info"] for p in parts},
        config=config,
        notes=[n for p in parts for n in p["info"]["notes"]],
    )
    return readjust(result, config.correction)


def merge_results(results: Sequence[ComparisonResult]) -> ComparisonResult:
    """Merge comparisons of different tasks (e.g. one ``compare`` call per task) and redo the corrections over
    the merged families."""
    if not results:
        raise AnalysisInputError("nothing to merge")
    if len(results) == 1:
        return results[0]
    seen: dict[str, int] = {}
    for i, r in enumerate(results):
        for task in r.tasks:
            if task in seen:
                raise AnalysisInputError(f"task {task!r} appears in two comparisons; keep one")
            seen[task] = i
    config = results[0].config
    notes = [n for r in results for n in r.notes]
    if len({json.dumps(r.config.to_dict(), sort_keys=True) for r in results}) > 1:
        notes.append("the merged comparisons were run with different settings (permutations, seeds, ...)")
    merged = ComparisonResult(
        distributions=_concat([r.distributions for r in results]),
        tests=_concat([r.tests for r in results]),
        correlations=_concat([r.correlations for r in results]),
        heads=_concat([r.heads for r in results]),
        layers=_concat([r.layers for r in results]),
        tasks={k: v for r in results for k, v in r.tasks.items()},
        config=config,
        notes=notes,
    )
    return readjust(merged, config.correction)


def readjust(result: ComparisonResult, method: str) -> ComparisonResult:
    """Recompute ``p_adjusted`` in the tests (per family) and the correlations (one family)."""
    tests = result.tests.copy()
    if not tests.empty:
        tests["p_adjusted"] = np.nan
        for _, idx in tests.groupby(["comparison", "weights", "test"]).groups.items():
            tests.loc[idx, "p_adjusted"] = adjust_pvalues(tests.loc[idx, "p_value"].to_numpy(float), method)
    corr = result.correlations.copy()
    if not corr.empty:
        corr["p_adjusted"] = adjust_pvalues(corr["p_value"].to_numpy(float), method)
    result.tests, result.correlations = tests, corr
    return result


def _seed(config: CompareConfig, *key: str) -> list[int]:
    """A seed for one test: the configured seed plus a stable hash of what is tested, so tests are
    reproducible one by one and do not share random streams."""
    return [config.seed, zlib.crc32("|".join(key).encode())]


def _compare_task(inputs: TaskInputs, config: CompareConfig) -> dict:
    kinds, notes = check_task_inputs(inputs, config)
    task, s = inputs.task, inputs.survivors
    tables = inputs.tables()
    if not s.heads:
        notes.append(
            f"{task}: there are no super-survivor heads; only the full-model distributions are reported"
        )
    elif len(s.heads) == s.n_layers * s.n_heads:
        notes.append(f"{task}: every head is a super-survivor; survivors cannot be compared with the rest")

    dists, tests, corrs, heads, layers = [], [], [], [], []
    for kind in kinds:
        if kind in LAYER_KINDS:
            notes.append(f"{task}: {kind} maps are one per layer (head -1); of the tests only the paired ones "
                         "(pruning_effect, finetuning_effect) apply, with the layer as the unit")
        counts = {cond: head_counts(t.maps, kind) for cond, t in tables.items()}
        # Distributions, majority types, layers -------------------------------------------------------------
        for (weights, group), c in counts.items():
            low, high = bootstrap_proportions(
                c,
                config.n_bootstrap,
                config.confidence_level,
                _seed(config, task, kind, weights, group, "ci"),
            )
            props = c.proportions()
            for j, t in enumerate(PATTERN_TYPES):
                dists.append(
                    dict(
                        task=task,
                        kind=kind,
                        weights=weights,
                        heads=group,
                        condition=condition_label(weights, group),
                        type=t,
                        count=int(c.counts[:, j].sum()),
                        n_maps=c.total,
                        n_heads=len(c),
                        proportion=float(props[j]),
                        ci_low=float(low[j]),
                        ci_high=float(high[j]),
                    )
                )
            tag = dict(task=task, kind=kind, weights=weights, heads=group)
            heads.append(_tagged(majority_frame(c, s.heads), tag))
            layers.append(_tagged(layer_distribution(c), tag))

        # Tests --------------------------------------------------------------------------------------------
        for weights in (FINETUNED, PRETRAINED):
            full = counts.get((weights, ALL_HEADS))
            pruned = counts.get((weights, SUPER_SURVIVORS))
            if full is None:
                continue
            if kind in LAYER_KINDS:
                # one map per layer: no unit is a super-survivor and the pruned and full models share their
                # layers, so only the paired tests below (pruned vs full, by layer) are valid
                survivors_full, rest = full.subset([]), full.subset([])
            else:
                survivors_full, rest = full.subset(s.heads), full.without(s.heads)
            if len(survivors_full) and len(rest):
                tests += _independent_tests(
                    config, task, kind, weights, "survivors_vs_rest", survivors_full, rest
                )
                corr = heterogeneity_survival_correlation(
                    full, s.heads, config.n_permutations, _seed(config, task, kind, weights, "corr")
                )
                corrs.append(
                    dict(
                        task=task,
                        kind=kind,
                        weights=weights,
                        r=corr.r,
                        p_value=corr.p_value,
                        n_maps=corr.n_maps,
                        n_heads=corr.n_heads,
                        n_survivors=corr.n_survivors,
                        n_resamples=corr.n_resamples,
                        exact=corr.exact,
                    )
                )
            if pruned is not None and len(pruned) and len(rest):
                tests += _independent_tests(config, task, kind, weights, "pruned_vs_rest", pruned, rest)
            if pruned is not None and len(pruned):
                tests += _paired_tests(
                    config, task, kind, weights, "pruning_effect", pruned, full.subset(pruned.heads)
                )
        ft, pt = counts.get((FINETUNED, ALL_HEADS)), counts.get((PRETRAINED, ALL_HEADS))
        if ft is not None and pt is not None:
            tests += _paired_tests(
                config, task, kind, "fine-tuned vs pretrained", "finetuning_effect", ft, pt.subset(ft.heads)
            )

    info = {
        "task": task,
        "kinds": kinds,
        "survivors": _survivors_info(s),
        "conditions": {
            condition_label(*cond): {
                "source": t.source,
                "model": t.model,
                "model_name": t.model_name,
                "revision": t.revision,
                "n_heads": len(t.heads),
                "n_examples": {k: len(t.example_ids(k)) for k in kinds},
                "classifier": t.classifier,
            }
            for cond, t in tables.items()
        },
        "notes": notes,
    }
    return dict(
        task=task,
        info=info,
        distributions=pd.DataFrame(dists, columns=_DIST_COLUMNS),
        tests=pd.DataFrame(tests, columns=_TEST_COLUMNS),
        correlations=pd.DataFrame(corrs, columns=_CORR_COLUMNS),
        heads=_concat(heads),
        layers=_concat(layers),
    )


_DIST_COLUMNS = (
    "task kind weights heads condition type count n_maps n_heads proportion ci_low ci_high".split()
)
_TEST_COLUMNS = (
    "task kind weights comparison group_a group_b test type estimate ci_low ci_high prop_a prop_b "
    "n_heads_a n_heads_b n_maps_a n_maps_b p_value p_adjusted method n_resamples"
).split()
_CORR_COLUMNS = "task kind weights r p_value p_adjusted n_maps n_heads n_survivors n_resamples exact".split()


def _base_row(task, kind, weights, comparison, a: HeadCounts, b: HeadCounts) -> dict:
    group_a, group_b, _ = COMPARISONS[comparison]
    return dict(
        task=task,
        kind=kind,
        weights=weights,
        comparison=comparison,
        group_a=group_a,
        group_b=group_b,
        n_heads_a=len(a),
        n_heads_b=len(b),
        n_maps_a=a.total,
        n_maps_b=b.total,
    )


def _permutation_rows(base, perm, low, high) -> list[dict]:
    kind = "paired permutation over heads" if perm.paired else "permutation over heads"
    method = f"{kind} ({'exact, ' if perm.exact else ''}{perm.n_resamples} relabellings)"
    rows = [
        dict(
            base,
            test="difference",
            type=t,
            estimate=float(perm.differences[j]),
            ci_low=float(low[j]),
            ci_high=float(high[j]),
            prop_a=float(perm.prop_a[j]),
            prop_b=float(perm.prop_b[j]),
            p_value=float(perm.p_types[j]),
            method=method,
            n_resamples=perm.n_resamples,
        )
        for j, t in enumerate(PATTERN_TYPES)
    ]
    rows.append(_all_types_row(base, "TVD", perm.tvd, perm.p_tvd, method, perm.n_resamples))
    return rows


def _independent_tests(config, task, kind, weights, comparison, a: HeadCounts, b: HeadCounts) -> list[dict]:
    """Two disjoint sets of heads: permutation tests, bootstrap intervals, and the majority-label test."""
    return _head_tests(config, task, kind, weights, comparison, a, b, paired=False)


def _paired_tests(config, task, kind, weights, comparison, a: HeadCounts, b: HeadCounts) -> list[dict]:
    """The same heads under two conditions: paired permutation tests and paired bootstrap intervals."""
    return _head_tests(config, task, kind, weights, comparison, a, b, paired=True)


def _head_tests(config, task, kind, weights, comparison, a: HeadCounts, b: HeadCounts, paired: bool) -> list[dict]:
    base = _base_row(task, kind, weights, comparison, a, b)

    def seed(purpose: str) -> int:
        return _seed(config, task, kind, weights, comparison, purpose)

    permutation = paired_permutation_test_heads if paired else permutation_test_heads
    perm = permutation(a, b, config.n_permutations, seed("perm"))
    low, high = bootstrap_difference(
        a, b, config.n_bootstrap, config.confidence_level, seed("ci"), paired=paired
    )
    rows = _permutation_rows(base, perm, low, high)
    if paired:
        return rows
    maj = majority_test(a, b, config.n_permutations, seed("majority"))
    rows.append(_all_types_row(base, "majority", maj.statistic, maj.p_value, maj.method, np.nan))
    return rows


def _all_types_row(base: dict, test: str, estimate, p_value, method: str, n_resamples) -> dict:
    """A test row about the whole distribution (no per-type interval or proportions)."""
    return dict(base, test=test, type="all", estimate=estimate, ci_low=np.nan, ci_high=np.nan, prop_a=np.nan,
                prop_b=np.nan, p_value=p_value, method=method, n_resamples=n_resamples)


def _tagged(frame: pd.DataFrame, tag: dict) -> pd.DataFrame:
    """Prefix the identifying columns (task, kind, weights, heads) to a frame."""
    front = pd.DataFrame({k: [v] * len(frame) for k, v in tag.items()}, index=frame.index)
    return pd.concat([front, frame], axis=1)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None]
    if not frames:
        return pd.DataFrame()
    non_empty = [f for f in frames if not f.empty]
    return pd.concat(non_empty or frames[:1], ignore_index=True)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def save_comparison(
    result: ComparisonResult, folder: str | Path, figures: bool = True
) -> dict[str, list[Path]]:
    """Write a comparison folder: the CSV tables and ``comparison.json`` (see :meth:`ComparisonResult.save`),
    and with ``figures`` every task's figures as ``figures/<task>_<name>.png`` and ``.svg``. Returns what was
    written, by kind ("tables", "figures")."""
    folder = Path(folder)
    json_path = result.save(folder)
    written = {"tables": [json_path, *(folder / name for name in result._frames())], "figures": []}
    if figures:
        from attnpatterns.plotting.compare import save_figure, task_figures

        for task in result.task_names:
            for name, fig in task_figures(result, task).items():
                written["figures"] += save_figure(fig, folder / FIGURES_DIR / f"{_slug(task)}_{name}")
    return written


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text)) or "task"

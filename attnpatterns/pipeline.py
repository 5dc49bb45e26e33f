"""The main job: finetune → prune over seeds → survivors → extract → classify → compare → report.

For each task, every seed fine-tunes the encoder and prunes it; the heads kept in every seed are the super-survivors.
Maps of the task's first dev examples are then extracted in four conditions (fine-tuned vs pretrained weights × all
heads vs super-survivors, the pruned model not retrained), classified into the five pattern types, and compared.

Each step writes its own run folder under the pipeline folder and is cached by its configuration: the step functions
(``finetune``, ``run_pruning``, ``extract_maps``) reuse a finished folder with the same fingerprint and resume an
unfinished one, and the classify/compare steps keep a ``step.json`` fingerprint of their inputs. So a rerun skips
finished work, and an interrupted pipeline resumes where it stopped with the same result.

The library stays pure: progress goes to the ``log`` callback (one line per event) and ``bar`` factory supplied by
the caller.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from attnpatterns.constants import (
    ALL_HEADS,
    CONDITION_FOLDERS,
    DEFAULT_MODEL,
    FINETUNED,
    HEAD_KINDS,
    PRETRAINED,
    REPORT_FILE,
    SUPER_SURVIVORS,
)
from attnpatterns.runfolder import (
    RunExistsError,
    atomic_write_text,
    fingerprint,
    mark_step_done,
    open_run_folder,
    read_manifest,
    step_done,
    write_json,
)

TIMINGS_FILE = "timings.json"
PIPELINE_RUN = "pipeline"


@dataclass
class PipelineConfig:
    """Settings of the whole job. The defaults are the offline quick run: bundled MiniLM, built-in task, 3 seeds."""

    model: str = DEFAULT_MODEL
    tasks: tuple[str, ...] = ("reviews",)
    seeds: int = 3
    examples: int = 24  # dev examples whose maps are extracted and classified (the paper used 100)
    method: str = "structured"
    glue_dir: str | None = None
    preset: str = "auto"  # fine-tuning preset: quick for built-in tasks, paper for GLUE
    epochs: float | None = None
    max_train_examples: int | None = None
    max_length: int | None = None
    prune_dev_examples: int | None = None
    importance_examples: int | None = None
    threshold: float = 0.9
    kinds: tuple[str, ...] = HEAD_KINDS  # per-head kinds only: the comparison is about super-survivor heads
    raw_checkpoint: str | None = None  # None: the shipped default classifier
    normed_checkpoint: str | None = None
    n_permutations: int = 2000
    n_bootstrap: int = 1000
    device: str = "auto"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        self.kinds = tuple(self.kinds)
        if not self.tasks:
            raise ValueError("give at least one task (--tasks).")
        if self.seeds < 1:
            raise ValueError("--seeds must be at least 1 (super-survivors need 2 or more to mean anything).")
        if self.examples < 1:
            raise ValueError("--examples must be a positive number of dev examples.")
        if not self.kinds or any(k not in HEAD_KINDS for k in self.kinds):
            raise ValueError(
                f"the pipeline compares per-head maps, so its kinds are a subset of {', '.join(HEAD_KINDS)}, not "
                f"{', '.join(self.kinds) or 'none'}; extract layer-level kinds with `attnpatterns extract --kinds`."
            )
        if self.method not in ("structured", "magnitude"):
            raise ValueError("--method must be structured or magnitude.")
        if self.method == "magnitude":
            raise ValueError(
                "the pattern comparison needs head masks, which magnitude pruning does not produce; use "
                "--method structured (run `attnpatterns prune --method magnitude` on its own for m-pruning)."
            )
        if not 0 < self.threshold <= 1:
            raise ValueError("--threshold must lie in (0, 1].")

    def to_dict(self) -> dict:
        return asdict(self)


def pipeline_fingerprint(config: PipelineConfig) -> str:
    """What decides the pipeline's results: every setting (a rerun with other settings is another run)."""
    return fingerprint({"run": PIPELINE_RUN, "config": config.to_dict()})


def _settings_changed(old: dict, new: dict) -> str:
    """``name: old -> new`` for every setting that differs, for the refusal message."""
    new = json.loads(json.dumps(new, default=str))  # as the manifest stores it: tuples are lists there
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def open_pipeline_folder(config: PipelineConfig, out: Path, overwrite: bool = False):
    """Clear ``out`` for this pipeline (resume it when it holds this pipeline, unfinished), writing nothing.

    A folder holding the same pipeline with other settings is refused with the settings that differ.
    """
    try:
        return open_run_folder(out, PIPELINE_RUN, pipeline_fingerprint(config), overwrite, resume=True)
    except RunExistsError:
        old = read_manifest(out) or {}
        if old.get("run_type") == PIPELINE_RUN and isinstance(old.get("config"), dict):
            changed = _settings_changed(old["config"], config.to_dict()) or "the same settings, another version"
            raise RunExistsError(
                f"{out} holds a pipeline run with other settings ({changed}); nothing was written. Rerun with its "
                "settings to resume or reuse it, choose another --output, or pass --overwrite to replace it."
            ) from None
        raise


class _Timer:
    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.times: dict[str, float] = {}

    def step(self, name: str, fn: Callable, *args, **kwargs):
        self.log(f"▶ {name}")
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
        self.times[name] = round(seconds, 2)
        self.log(f"✓ {name} ({seconds:.1f} s)")
        return result


def run_pipeline(
    config: PipelineConfig,
    out: Path | str,
    log: Callable[[str], None] = lambda msg: None,
    show_progress: bool = False,
    manifest_extra: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Run every step for every task into ``out`` and return the path of the HTML report.

    ``out`` is checked before anything is written: a folder holding this pipeline is resumed (finished steps are
    reused), anything else is refused unless ``overwrite`` and it is an attnpatterns run (see
    :mod:`attnpatterns.runfolder`).
    """
    from attnpatterns.analysis import (
        CompareConfig,
        TaskInputs,
        build_report,
        compare,
        find_pruning_logs,
        save_comparison,
    )
    from attnpatterns.analysis.tables import PatternTable, load_survivors
    from attnpatterns.patterns import load_classifier
    from attnpatterns.runtime import resolve_device

    out = Path(out)
    folder = open_pipeline_folder(config, out, overwrite)
    device = resolve_device(config.device)
    manifest = folder.start({**(manifest_extra or {}), "config": config.to_dict(), "device": str(device)})
    timer = _Timer(log)
    classifiers = {kind: load_classifier(getattr(config, f"{kind}_checkpoint"), kind=kind, device=device)
                   for kind in config.kinds}

    task_inputs = []
    for task_name in config.tasks:
        task_dir = out / task_name
        task = timer.step(f"{task_name}: load task", _load_task, task_name, config)
        seeds = list(range(config.seeds))
        prune_dirs = []
        first_finetuned = None
        for seed in seeds:
            seed_dir = task_dir / f"seed_{seed}"
            ft = timer.step(f"{task_name} seed {seed}: finetune", _finetune, config, task, seed,
                            seed_dir / "finetune", device, show_progress)
            log(f"  dev {ft.metric} = {ft.score:.4f}")
            first_finetuned = first_finetuned or ft.path
            pr = timer.step(f"{task_name} seed {seed}: prune ({config.method})", _prune, config, task, seed,
                            ft.path, seed_dir / "prune", device, log)
            log(f"  kept {pr.subnetwork.summary()} · score {pr.final_score:.4f} of full {pr.full_score:.4f}")
            prune_dirs.append(seed_dir / "prune")
        survivors = timer.step(f"{task_name}: survivors", _survivors, task_name, prune_dirs, task_dir / "survivors")
        n_super = int(survivors.super_head_mask.sum())
        log(f"  {n_super} super-survivor heads of {survivors.super_head_mask.size}; "
            f"Fleiss' κ = {survivors.kappa if survivors.kappa is None else round(survivors.kappa, 3)}")

        dev = list(task.dev[: config.examples])
        tables: dict[tuple[str, str], PatternTable] = {}
        for (weights, heads), name in CONDITION_FOLDERS.items():
            if heads == SUPER_SURVIVORS and n_super == 0:
                log(f"  no super-survivors: skipping {name}")
                continue
            source = first_finetuned if weights == FINETUNED else config.model
            masks = (survivors.super_head_mask, survivors.super_mlp_mask) if heads == SUPER_SURVIVORS else (None, None)
            run = timer.step(f"{task_name}: extract {name}", _extract, source, weights, dev, masks,
                             task_dir / "extract" / name, device, config)
            table = timer.step(f"{task_name}: classify {name}", _classify, run, classifiers,
                               task_dir / "classify" / name)
            tables[(weights, heads)] = PatternTable.from_classification_table(table)
        task_inputs.append(TaskInputs(
            task=task_name,
            survivors=load_survivors(task_dir / "survivors"),
            full=tables[(FINETUNED, ALL_HEADS)],
            survivors_table=tables.get((FINETUNED, SUPER_SURVIVORS)),
            pretrained_full=tables.get((PRETRAINED, ALL_HEADS)),
            pretrained_survivors=tables.get((PRETRAINED, SUPER_SURVIVORS)),
        ))

    compare_config = CompareConfig(seed=0, n_permutations=config.n_permutations, n_bootstrap=config.n_bootstrap)
    result = timer.step("compare", compare, task_inputs, compare_config)
    timer.step("save comparison", save_comparison, result, out / "compare", True)
    manifest = folder.finish(timings_s=timer.times)
    html = timer.step("report", build_report, result, find_pruning_logs(out, result.task_names), manifest)
    report = out / REPORT_FILE
    atomic_write_text(report, html)
    write_json(out / TIMINGS_FILE, timer.times)
    return report


# -- steps ---------------------------------------------------------------------------------------------------------
def _load_task(name: str, config: PipelineConfig):
    from attnpatterns.tasks.task import load_task

    return load_task(name, glue_dir=config.glue_dir)


def _finetune(config: PipelineConfig, task, seed: int, out: Path, device, show_progress: bool):
    from attnpatterns.finetuning.finetune import FinetuneConfig, finetune
    from attnpatterns.models import load_model
    from attnpatterns.runtime import seed_everything

    ft_config = FinetuneConfig.for_task(
        task, config.preset, seed=seed, epochs=config.epochs, max_length=config.max_length,
        max_train_examples=config.max_train_examples,
    )
    seed_everything(seed)  # before loading: the new classification head's initialisation depends on it
    loaded = load_model(config.model, device, head="classification", num_labels=task.num_labels)
    return finetune(loaded, task, out, ft_config, progress=show_progress)


def _prune(config: PipelineConfig, task, seed: int, finetuned: Path, out: Path, device, log):
    from attnpatterns.models import load_model
    from attnpatterns.pruning.prune import default_config, run_pruning
    from attnpatterns.runtime import seed_everything

    seed_everything(seed)
    loaded = load_model(finetuned, device)
    prune_config = default_config(
        config.method, task, threshold=config.threshold, max_length=config.max_length,
        max_dev_examples=config.prune_dev_examples, importance_examples=config.importance_examples,
    )

    def on_step(step: dict) -> None:
        log("  step {step} {phase}: score {score:.4f} heads {heads_left} mlps {mlps_left}{ok}".format(
            step=step.get("step"), phase=step.get("phase", ""), score=step.get("score", float("nan")),
            heads_left=step.get("heads_left"), mlps_left=step.get("mlps_left"),
            ok="" if step.get("passed", True) else " (below threshold: stop)"))

    return run_pruning(loaded, task, out, config.method, prune_config, seed=seed, progress=on_step)


def _survivors(task_name: str, prune_dirs: list[Path], out: Path):
    from attnpatterns.pruning.survivors import compute_survivors, read_seed_masks

    survivors = compute_survivors([read_seed_masks(d) for d in prune_dirs], task=task_name)
    survivors.save(out)
    return survivors


def _extract(source, weights: str, examples, masks, out: Path, device, config: PipelineConfig):
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model

    loaded = load_model(source, device, head="encoder" if weights == PRETRAINED else "auto")
    head_mask, mlp_mask = masks
    ex_config = ExtractionConfig(kinds=config.kinds, max_length=config.max_length or 128,
                                 inputs={"source": "task-dev", "n_examples": len(examples)})
    return extract_maps(loaded, examples, out, ex_config, head_mask, mlp_mask)


def _classify(run, classifiers: dict, out: Path):
    from attnpatterns.patterns.classify import ClassificationTable, classification_fingerprint, classify_run

    fp = classification_fingerprint(run.manifest.get("fingerprint"), classifiers)
    if step_done(out, fp):
        return ClassificationTable.load(out)
    table = classify_run(run, classifiers)
    table.save(out)
    mark_step_done(out, fp, {"run": str(run.root)})
    return table

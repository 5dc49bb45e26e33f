"""Fine-tuning a sequence-classification (or regression) head with the Hugging Face Trainer.

The Trainer is what makes ``torchrun --nproc_per_node N`` and ``accelerate launch`` spread one fine-tuning over
several GPUs with no code change (``batch_size`` is the total over all processes, as in the paper). The paper's
settings are the ``paper`` preset (lr 2e-5, batch 32, 3 epochs, max length 128); the ``quick`` preset is what the
built-in tasks use by default, so that the whole default pipeline fits in minutes on a laptop CPU. Any single
setting can still be given explicitly.

A :class:`~attnpatterns.masking.subnetwork.Subnetwork` can be held off during training (masked heads and MLPs gated
to 0, masked weights fixed at 0): that is the re-fine-tuning of the controls, starting from pretrained weights.
The run folder is a loadable model folder (``save_pretrained`` + tokenizer) plus ``metrics.json``, the masks that
were held off, and the manifest; a finished run with the same fingerprint is reused rather than recomputed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from attnpatterns.constants import MANIFEST_FILE
from attnpatterns.masking.subnetwork import Subnetwork
from attnpatterns.models.adapter import model_device
from attnpatterns.models.identity import FINETUNE_RUN, base_model_name, model_identity
from attnpatterns.models.loading import LoadedModel
from attnpatterns.runfolder import fingerprint, open_run_folder, read_manifest, write_json
from attnpatterns.runtime import MIXED_PRECISION, check_mixed_precision
from attnpatterns.tasks.batches import FeatureDataset, collate, encode
from attnpatterns.tasks.evaluation import check_classifier, evaluate
from attnpatterns.tasks.task import Task, limit_examples

#: The dev scores of the fine-tuned model, beside the saved weights in the run folder.
METRICS_FILE = "metrics.json"

#: Named settings. ``paper``: Prasanna et al. (2020). ``quick``: the built-in tasks' default (short texts, CPU).
PRESETS: dict[str, dict] = {
    "paper": {"learning_rate": 2e-5, "batch_size": 32, "epochs": 3.0, "max_length": 128},
    "quick": {"learning_rate": 1e-4, "batch_size": 16, "epochs": 2.0, "max_length": 64, "group_by_length": True},
}


#: Built-in tasks that the quick preset alone does not teach MiniLM (measured on CPU, seed 0: ``entail`` stays at
#: chance after 2 epochs at lr 1e-4, and reaches 0.71 dev accuracy, majority class 0.52, after 4 epochs at 5e-5).
QUICK_TASK_SETTINGS: dict[str, dict] = {"entail": {"learning_rate": 5e-5, "epochs": 4.0}}


def default_preset(task: Task) -> str:
    """``quick`` for the built-in tasks, ``paper`` for GLUE and user files."""
    return "quick" if task.origin == "builtin" else "paper"


@dataclass(frozen=True)
class FinetuneConfig:
    learning_rate: float = 2e-5
    batch_size: int = 32  # total over all processes
    epochs: float = 3.0
    max_length: int = 128
    seed: int = 0
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_train_examples: int | None = None  # first N training examples (all when None)
    mixed_precision: str = "no"  # no | fp16 (CUDA) | bf16
    group_by_length: bool = False  # batches of similar length (less padding); shuffled in random mega-batches
    eval_batch_size: int = 64  # speed only, not part of the fingerprint

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.epochs <= 0 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("learning rate, epochs and batch sizes must be positive.")
        if self.max_length < 8:
            raise ValueError("max_length must be at least 8 tokens.")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed precision must be one of {', '.join(MIXED_PRECISION)}, not {self.mixed_precision!r}."
            )
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError("max_train_examples must be positive.")

    @classmethod
    def for_task(cls, task: Task, preset: str = "auto", **overrides) -> FinetuneConfig:
        """The preset's settings (``auto``: :func:`default_preset`), then any ``overrides`` that are not None."""
        name = default_preset(task) if preset == "auto" else preset
        if name not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose auto, {', '.join(PRESETS)}.")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown fine-tuning settings: {', '.join(sorted(unknown))}")
        base = dict(PRESETS[name])
        if name == "quick" and task.origin == "builtin":
            base.update(QUICK_TASK_SETTINGS.get(task.name, {}))
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FinetuneResult:
    path: Path  # the run folder, loadable with load_model
    dev_metrics: dict[str, float]
    metric: str
    config: FinetuneConfig
    train_seconds: float
    reused: bool = False

    @property
    def score(self) -> float:
        return self.dev_metrics[self.metric]

    @classmethod
    def load(cls, folder: Path | str, reused: bool = True) -> FinetuneResult:
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest is None or manifest.get("run_type") != FINETUNE_RUN or manifest.get("status") != "complete":
            raise ValueError(f"{folder} is not a finished fine-tuning run (no complete {MANIFEST_FILE}).")
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
        return cls(folder, metrics["dev"], metrics["metric"], FinetuneConfig.from_dict(manifest["config"]),
                   metrics.get("train_seconds", 0.0), reused)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def finetune(
    loaded: LoadedModel,
    task: Task,
    out: Path | str,
    config: FinetuneConfig | None = None,
    subnetwork: Subnetwork | None = None,
    overwrite: bool = False,
    progress: bool = True,
    manifest_extra: dict | None = None,
) -> FinetuneResult:
    """Fine-tune ``loaded`` (a classification model with ``task.num_labels`` outputs) and write a run folder.

    ``subnetwork`` is held off during training and applied when scoring (re-fine-tuning a masked subnetwork).
    Seeding happens before the model is loaded (the new head's initialisation depends on it) and again here.
    """
    from transformers import Trainer, TrainingArguments

    config = config or FinetuneConfig.for_task(task)
    out = Path(out)
    model = loaded.model
    check_classifier(model, task.num_labels, "fine-tuning")
    sub = (subnetwork or Subnetwork()).check(model)
    device = model_device(model)
    check_mixed_precision(config.mixed_precision, device)
    world = _world_size()
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} processes; use a multiple.")
    train_examples = limit_examples(task.train, config.max_train_examples)
    ident = {
        "model": model_identity(loaded),
        "task": task.fingerprint(),
        "config": {k: v for k, v in config.to_dict().items() if k != "eval_batch_size"},
        "subnetwork": sub.digest(),
    }
    fp = fingerprint(ident)
    if _rank() != 0:  # under torchrun only rank 0 touches the folder; the others reuse or train, never write
        old = read_manifest(out)
        if old and old.get("fingerprint") == fp and old.get("status") == "complete" and not overwrite:
            return FinetuneResult.load(out)
    else:
        folder = open_run_folder(out, FINETUNE_RUN, fp, overwrite)  # an unfinished run starts again
        if folder.reuse:
            return FinetuneResult.load(out)
    if _rank() == 0:
        folder.start({
            "model": loaded.describe(),
            "base_model": base_model_name(loaded),
            "model_identity": ident["model"],
            "task": task.describe(),
            "config": config.to_dict(),
            "seed": config.seed,
            "device": str(device),
            "world_size": world,
            "held_off": sub.summary(),
            **(manifest_extra or {}),
        })
    regression = task.is_regression
    features = encode(loaded.tokenizer, train_examples, config.max_length, regression)
    pad = loaded.tokenizer.pad_token_id or 0
    scratch = out / "_trainer"
    args = TrainingArguments(
        output_dir=str(scratch),
        per_device_train_batch_size=config.batch_size // world,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        seed=config.seed,
        data_seed=config.seed,
        fp16=config.mixed_precision == "fp16",
        bf16=config.mixed_precision == "bf16",
        use_cpu=device.type == "cpu",
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="epoch",
        disable_tqdm=not progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=FeatureDataset(features),
        data_collator=lambda batch: collate(batch, pad),
    )
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log dict when the bar is off
    start = time.perf_counter()
    with sub.held_off(model):
        state = trainer.train()
    seconds = time.perf_counter() - start
    model.eval()
    if not trainer.is_world_process_zero():
        return FinetuneResult(out, {}, task.metric, config, seconds)
    shutil.rmtree(scratch, ignore_errors=True)
    scores = evaluate(model, loaded.tokenizer, task.dev, task.num_labels, config.max_length,
                      config.eval_batch_size, sub)
    losses = [round(h["loss"], 5) for h in trainer.state.log_history if "loss" in h]
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    if not sub.is_full:
        sub.save(out)
    metrics = {
        "metric": task.metric,
        "dev": scores.metrics,
        "dev_loss": scores.loss,
        "majority_baseline": _majority(task),
        "train_loss_per_epoch": losses,
        "train_examples": len(train_examples),
        "train_seconds": round(seconds, 2),
        "train_runtime": state.metrics.get("train_runtime"),
    }
    write_json(out / METRICS_FILE, metrics)
    if _rank() == 0:
        folder.finish(dev_score=scores[task.metric])
    return FinetuneResult(out, scores.metrics, task.metric, config, seconds)


def _majority(task: Task) -> float | None:
    """Dev accuracy of always predicting the most frequent training label (None for regression)."""
    if task.is_regression:
        return None
    counts = np.bincount([int(e.label) for e in task.train], minlength=task.num_labels)
    majority = int(counts.argmax())
    return float(np.mean([int(e.label) == majority for e in task.dev]))


"""``run_pruning``: prune (or draw a control for) a fine-tuned classifier and write a self-describing run folder.

The folder holds ``head_mask.npy`` and ``mlp_mask.npy`` (structured pruning and its controls) or
``weight_masks.safetensors`` (magnitude pruning and its controls), ``pruning_log.json`` (see
:mod:`attnpatterns.pruning.result`), ``importance.npz`` (structured) and ``manifest.json``. A finished run with the
same fingerprint is reused, not recomputed; a folder holding anything else needs ``overwrite=True``.

While structured or magnitude pruning runs, ``pruning_state.npz`` (:mod:`attnpatterns.pruning.checkpoint`) holds
the state after its last finished step; rerunning the same command after a kill resumes from there (the manifest
counts it in ``resumed``) and ends with the same masks and log as an uninterrupted run (only the steps' ``seconds``
may differ). The state is removed once the run is complete. A control starts an unfinished run again from scratch:
it is one draw and one scoring pass, with nothing to resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from attnpatterns.models.adapter import model_device
from attnpatterns.models.identity import base_model_name, model_identity
from attnpatterns.models.loading import LoadedModel
from attnpatterns.pruning.checkpoint import PRUNING_STATE_FILE, discard_checkpoint, load_checkpoint, save_checkpoint
from attnpatterns.pruning.controls import CONTROL_KINDS, score_control
from attnpatterns.pruning.magnitude import MagnitudeConfig, MagnitudeState, magnitude_prune
from attnpatterns.pruning.result import PruningResult
from attnpatterns.pruning.structured import ScheduleState, StructuredConfig, structured_prune
from attnpatterns.runfolder import fingerprint, open_run_folder
from attnpatterns.runtime import autocast
from attnpatterns.tasks.evaluation import check_classifier
from attnpatterns.tasks.task import Task

#: The run type a pruning run folder's manifest names.
PRUNING_RUN = "pruning"
METHODS = ("structured", "magnitude", *CONTROL_KINDS)
#: The step state of each method whose unfinished run continues from its last finished step (controls start again).
RESUMABLE = {"structured": ScheduleState, "magnitude": MagnitudeState}

#: Settings used for the built-in tasks by default: short texts, so a short max length (CPU-friendly).
QUICK_MAX_LENGTH = 64


def default_config(method: str, task: Task, **overrides) -> StructuredConfig | MagnitudeConfig | None:
    """The method's configuration for ``task``: the paper's, with max length 64 for the built-in tasks."""
    cls = {"structured": StructuredConfig, "magnitude": MagnitudeConfig}.get(method)
    given = {k: v for k, v in overrides.items() if v is not None}
    if cls is None:
        return None
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{method} pruning has no setting {', '.join(unknown)}.")
    base = {"max_length": QUICK_MAX_LENGTH} if task.origin == "builtin" else {}
    return cls(**{**base, **given})


def run_pruning(
    loaded: LoadedModel,
    task: Task,
    out: Path | str,
    method: str = "structured",
    config: StructuredConfig | MagnitudeConfig | None = None,
    seed: int = 0,
    reference: Path | str | None = None,
    overwrite: bool = False,
    progress: Callable[[dict], None] | None = None,
    manifest_extra: dict | None = None,
    mixed_precision: str = "no",
) -> PruningResult:
    """Prune ``loaded`` on ``task`` by ``method`` and save to ``out``; controls need ``reference`` (a pruning run).

    ``mixed_precision`` (fp16 on CUDA, bf16) runs every forward pass under autocast. A structured or
    magnitude run killed midway resumes from its last finished step when called again with the same arguments;
    ``progress`` then receives only the steps computed in this call.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}.")
    out = Path(out)
    check_classifier(loaded.model, task.num_labels)
    ref = None
    if method in CONTROL_KINDS:
        if reference is None:
            raise ValueError(f"a {method} control needs --reference, the pruning run whose masks it imitates.")
        ref = PruningResult.load(reference)
        ref.subnetwork.check(loaded.model)
    elif config is None:
        config = default_config(method, task)
    elif not isinstance(config, StructuredConfig if method == "structured" else MagnitudeConfig):
        raise TypeError(f"a {type(config).__name__} does not configure {method} pruning.")
    ident = {
        "model": model_identity(loaded),
        "task": task.fingerprint(),
        "metric": task.metric,
        "method": method,
        "config": None if config is None else config.to_dict(),
        "seed": seed,
        "reference": None if ref is None else [ref.log(), ref.subnetwork.digest()],
        "mixed_precision": mixed_precision,
    }
    precision = autocast(mixed_precision, model_device(loaded.model))
    fp = fingerprint(ident)
    folder = open_run_folder(out, PRUNING_RUN, fp, overwrite, resume=method in RESUMABLE)
    if folder.reuse:
        return PruningResult.load(out)
    state_path = out / PRUNING_STATE_FILE
    saved = load_checkpoint(state_path, fp) if folder.resume else None
    resume = None if saved is None else RESUMABLE[method].from_checkpoint(*saved)
    folder.start(
        {
            "method": method,
            "model": loaded.describe(),
            "base_model": base_model_name(loaded),
            "model_identity": ident["model"],
            "task": task.describe(),
            "seed": seed,
            "device": str(model_device(loaded.model)),
            "config": ident["config"],
            "mixed_precision": mixed_precision,
            "reference": None if reference is None else str(Path(reference).resolve()),
            **(manifest_extra or {}),
        },
    )
    with precision:
        if method in RESUMABLE:
            prune = structured_prune if method == "structured" else magnitude_prune
            result = prune(loaded.model, loaded.tokenizer, task, config, progress, resume=resume,
                           checkpoint=lambda state: save_checkpoint(state_path, fp, *state.to_checkpoint()))
        else:
            result = score_control(loaded.model, loaded.tokenizer, task, ref, method, seed,
                                   max_length=ref.config.get("max_length", 128),
                                   max_dev_examples=ref.config.get("max_dev_examples"))
            if progress:
                for step in result.steps:
                    progress(step)
    result.save(out)
    folder.finish(full_score=result.full_score, final_score=result.final_score, final=result.subnetwork.summary())
    discard_checkpoint(out)  # after "complete": a kill before this leaves a state that nothing reads
    return result

"""Options that name a labelled task (built-in, GLUE or the user's files), shared by finetune and prune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TaskOpt = Annotated[
    str | None,
    typer.Option("--task", "-t", help="Built-in task (reviews, entail) or GLUE task (cola, sst2, mrpc, stsb, ...)."),
]
GlueDirOpt = Annotated[
    Path | None, typer.Option("--glue-dir", help="Offline GLUE folder in the classic layout (glue_data).")
]
TrainFileOpt = Annotated[
    Path | None, typer.Option("--train-file", help="Your training file (.csv/.tsv/.jsonl with a header).")
]
DevFileOpt = Annotated[Path | None, typer.Option("--dev-file", help="Your dev file, same columns.")]
TextColumnOpt = Annotated[
    list[str] | None, typer.Option("--text-column", help="Text column of your files (give twice for pairs).")
]
LabelColumnOpt = Annotated[str, typer.Option("--label-column", help="Label column of your files.")]
RegressionOpt = Annotated[bool, typer.Option("--regression", help="Your labels are numbers (regression).")]
MetricOpt = Annotated[
    str | None,
    typer.Option("--metric", help="Metric that drives pruning: accuracy, f1, mcc, pearson, spearman or corr. "
                                   "Default as in the paper (MCC for CoLA, corr for STS-B, accuracy elsewhere)."),
]


def resolve_task(task, glue_dir, train_file, dev_file, text_column, label_column, regression, metric,
                 model_folder: Path | str | None = None):
    """Load the task the options name; with none named, the task of the fine-tuning run in ``model_folder``."""
    from attnpatterns.tasks.task import load_task
    from attnpatterns.runfolder import read_manifest

    if task is None and train_file is None and dev_file is None and model_folder is not None:
        manifest = read_manifest(model_folder) if Path(model_folder).is_dir() else None
        source = ((manifest or {}).get("task") or {}).get("source")
        if source:
            return load_task(**source, metric=metric)
    return load_task(task, glue_dir=glue_dir, train_file=train_file, dev_file=dev_file, text_columns=text_column,
                     label_column=label_column, regression=regression, metric=metric)

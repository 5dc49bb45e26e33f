"""``attnpatterns evaluate CHECKPOINT DATA``: score a classifier on labelled maps and print the report
(per-class F1, macro-F1, Cohen's kappa, confusion matrix)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import DeviceOpt, OverwriteOpt, fail
from attnpatterns.cli.train import FormatOpt, LabelMapOpt, check_kind, load_data


def evaluate(
    checkpoint: Annotated[
        str,
        typer.Argument(help="Checkpoint folder, a training run folder, or 'default' (the shipped one for --kind)."),
    ],
    data: Annotated[Path, typer.Argument(help="Labelled maps: annotations/ folder, .npy + labels.txt, .npy + TSV.")],
    format: FormatOpt = "auto",
    kind: Annotated[
        Optional[str],
        typer.Option("--kind", "-k", help="Kind of the maps (default: the checkpoint's kind)."),
    ] = None,
    label_map: LabelMapOpt = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Also save report.json/.txt and confusion_matrix.png here.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Maps per batch.", min=1)] = 512,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
) -> None:
    """Print per-class precision, recall and F1, macro-F1, Cohen's kappa and the confusion matrix of a checkpoint on
    DATA (kappa is the unit of the annotators' agreement, annotations/agreement.json)."""
    from attnpatterns.patterns import CheckpointError, KindMismatchError, evaluate_classifier, load_classifier
    from attnpatterns.patterns.evaluate import EVALUATION_RUN, open_evaluation_folder, report_title, save_evaluation
    from attnpatterns.patterns.preprocess import MapError
    from attnpatterns.runfolder import RunExistsError, check_output_folder
    from attnpatterns.runtime import resolve_device

    check_kind(kind)
    try:
        torch_device = resolve_device(device)
        if checkpoint == "default":
            if kind is None:
                raise typer.BadParameter("'default' needs --kind raw or --kind normed", param_hint="--kind")
            classifier = load_classifier(None, kind=kind, device=torch_device)
        else:
            classifier = load_classifier(checkpoint, kind=kind, device=torch_device)
        if output is not None:  # checked before the work: a folder that holds no evaluation is never touched
            check_output_folder(output, EVALUATION_RUN, None, overwrite)
    except (CheckpointError, KindMismatchError, ValueError, RunExistsError) as err:
        raise fail(str(err))
    dataset = load_data(data, format, kind or classifier.kind, label_map, None)
    try:
        if output is not None:  # the labels read are part of the report's identity (changed labels: another one)
            folder = open_evaluation_folder(output, classifier, data, format, kind, label_map, overwrite, dataset)
    except RunExistsError as err:
        raise fail(str(err))
    try:
        report = evaluate_classifier(classifier, dataset, batch_size=batch_size)
    except (KindMismatchError, MapError, ValueError) as err:
        raise fail(str(err))
    report.title = report_title(classifier, dataset.source, dataset.kind, fallback=checkpoint)
    typer.echo(report.to_text())
    if output is not None:
        save_evaluation(report, folder, checkpoint, data, dataset.kind)
        typer.echo(f"saved the report to {output}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)

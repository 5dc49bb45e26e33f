"""``attnpatterns train``: cross-validate the pattern classifier on labelled maps, then fit and save it.

Writes into the run folder: ``report.txt``/``report.json``/``confusion_matrix.png`` (k-fold grouped CV:
per-class precision, recall, F1, macro-F1), ``cv_predictions.csv`` (out-of-fold probabilities), ``training.json``,
``checkpoint/`` (safetensors + JSON) and ``manifest.json``. ``--install-default`` also makes the checkpoint the
shipped default for its kind; ``uv run python -m attnpatterns.patterns.rebuild_defaults`` does that for both kinds
from ``annotations/``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import DeviceOpt, OverwriteOpt, QuietOpt, SeedOpt, fail
from attnpatterns.constants import MAP_KINDS

KindOpt = Annotated[str, typer.Option("--kind", "-k", help="Kind of map: raw or normed.")]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="auto, corpus (annotations/ folder), npy-labels (.npy maps + labels.txt 'label = n1, n2'), "
        "npy-tsv (.npy maps + 'name<TAB>label' TSV).",
    ),
]
LabelMapOpt = Annotated[
    Optional[Path],
    typer.Option("--label-map",
                 help="Extra label names: lines 'name = type' or a JSON object (see annotation.labels)."),
]
GroupPatternOpt = Annotated[
    Optional[str],
    typer.Option(
        "--group-pattern",
        help="For .npy formats: regex whose first group (or match) in a map's name is its source text, so maps of "
        "one text stay on one side of a split. Default: every map its own group.",
    ),
]


def check_kind(kind: Optional[str], name: str = "--kind") -> None:
    if kind is not None and kind not in MAP_KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(MAP_KINDS)}", param_hint=name)


def load_data(data: Optional[Path], format: str, kind: Optional[str], label_map: Optional[Path], group_pattern):
    """Read a labelled set for the CLI (any format); errors become a clean exit."""
    from attnpatterns.annotation.corpus import CorpusError
    from attnpatterns.annotation.labels import DEFAULT_LABEL_MAP, LabelError, read_label_map_file
    from attnpatterns.patterns.io import FORMATS, DataError, load_labeled
    from attnpatterns.patterns.preprocess import MapError

    if format != "auto" and format not in FORMATS:
        raise typer.BadParameter(f"{format!r} is not one of auto, {', '.join(FORMATS)}", param_hint="--format")
    try:
        mapping = read_label_map_file(label_map) if label_map else DEFAULT_LABEL_MAP
        return load_labeled(data, format, kind, mapping, group_pattern)
    except (CorpusError, DataError, LabelError, MapError) as err:
        raise fail(str(err))


def train(
    kind: KindOpt,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run folder to write.")] = None,
    data: Annotated[
        Optional[Path], typer.Option("--data", help="Labelled maps (default: the project's annotations/).")
    ] = None,
    format: FormatOpt = "auto",
    folds: Annotated[int, typer.Option("--folds", help="Cross-validation folds.", min=2)] = 5,
    cv_repeats: Annotated[
        int, typer.Option("--cv-repeats", help="Run cross-validation this many times with other fold splits and "
                          "report every run's macro-F1 and their mean (small corpora: one split is noisy).")
    ] = 1,
    max_epochs: Annotated[int, typer.Option(help="Most epochs per fit (early stopping usually ends sooner).")] = 60,
    patience: Annotated[int, typer.Option(help="Epochs without a lower validation loss before stopping.")] = 10,
    skip_cv: Annotated[bool, typer.Option("--skip-cv", help="Fit the final model only, no cross-validation.")] = False,
    forest_weight: Annotated[
        float,
        typer.Option("--forest-weight", help="Share of the tree model over the feature vector in the final "
                     "probabilities; 0 = the CNN ensemble alone. The CV report scores both parts."),
    ] = 0.7,
    forest_method: Annotated[
        Optional[str],
        typer.Option("--forest-method", help="The tree model over the feature vector that is mixed with the CNN: "
                     "random-forest or gradient-boosting (default: "
                     "gradient-boosting)."),
    ] = None,
    grid: Annotated[
        Optional[int],
        typer.Option("--grid", min=8, help="Side of the grid every map is pooled to before the classifier sees "
                     "it (default: the kind's, 64 raw and 32 normed; the kind's other settings are kept). A finer "
                     "grid keeps one-token columns of long maps apart."),
    ] = None,
    allow_empty_classes: Annotated[
        bool, typer.Option("--allow-empty-classes", help="Train even if some type has no labelled maps.")
    ] = False,
    label_map: LabelMapOpt = None,
    group_pattern: GroupPatternOpt = None,
    install_default: Annotated[
        bool, typer.Option("--install-default", help="Also install the checkpoint as the shipped default.")
    ] = False,
    device: DeviceOpt = "cpu",
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Cross-validate (grouped by source text, stratified by label), then fit the classifier and save it."""
    from attnpatterns.annotation.labels import LabelError
    from attnpatterns.patterns.io import FORMATS, DataError
    from attnpatterns.patterns.model import ModelConfig
    from attnpatterns.patterns.preprocess import MapError, default_preprocess
    from attnpatterns.patterns.train import TrainConfig, train_run
    from attnpatterns.runfolder import RunExistsError
    from attnpatterns.runtime import resolve_device

    check_kind(kind)
    if format != "auto" and format not in FORMATS:
        raise typer.BadParameter(f"{format!r} is not one of auto, {', '.join(FORMATS)}", param_hint="--format")
    output = output if output is not None else Path(f"runs/train-{kind}")
    try:
        config = TrainConfig(
            n_folds=folds, max_epochs=max_epochs, patience=patience, seed=seed,
            allow_empty_classes=allow_empty_classes, cv_repeats=cv_repeats,
        )
        model = ModelConfig(forest_weight=forest_weight, **({} if forest_method is None else
                                                            {"forest_method": forest_method}))
        result, paths = train_run(
            output, kind, data, format, label_map, group_pattern, config, model,
            resolve_device(device), cross_validate=not skip_cv, overwrite=overwrite, install_default=install_default,
            log=(lambda message: None) if quiet else typer.echo,
            preprocess=None if grid is None else replace(default_preprocess(kind), grid=grid),
        )
    except (RunExistsError, DataError, LabelError, MapError, ValueError) as err:
        raise fail(str(err))
    typer.echo(f"trained in {result.seconds:.1f} s -> {output} (checkpoint: {paths['checkpoint']})")


def register(app: typer.Typer) -> None:
    app.command("train")(train)

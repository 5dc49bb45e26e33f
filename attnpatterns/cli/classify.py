"""``attnpatterns classify RUN -o OUT``: label every map of an extraction run (or a folder of ``.npy`` maps).

Writes ``classifications.csv`` (one row per map: example, layer, original head, kind, label, five
probabilities), ``head_summary.csv`` (per head and kind: majority label and distribution over examples) and
``manifest.json`` (the extraction run's manifest and the checkpoints used). Without ``--checkpoint`` the shipped
default of each kind is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import DeviceOpt, OverwriteOpt, QuietOpt, fail
from attnpatterns.cli.progress import progress_bar
from attnpatterns.cli.train import check_kind
from attnpatterns.constants import MANIFEST_FILE


def _is_extraction_run(path: Path) -> bool:
    return (path / MANIFEST_FILE).is_file()


def classify(
    run_dir: Annotated[Path, typer.Argument(help="Extraction run folder, or a folder of square .npy maps.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the tables to.")] = Path(
        "runs/classify"
    ),
    checkpoint: Annotated[
        Optional[list[Path]],
        typer.Option("--checkpoint", "-c", help="Checkpoint (repeat for raw and normed); default: the shipped ones."),
    ] = None,
    kinds: Annotated[
        Optional[str], typer.Option("--kinds", help="Kinds to classify, e.g. raw or raw,normed (default: all).")
    ] = None,
    kind: Annotated[
        Optional[str],
        typer.Option("--kind", "-k", help="Kind of the maps in a .npy folder (default: the checkpoint's, else raw)."),
    ] = None,
    name_pattern: Annotated[
        Optional[str],
        typer.Option(help="Regex with groups example, layer, head for .npy names (default reads ex12_L3_H7)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Maps per batch.", min=1)] = 512,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Classify maps into the five pattern types and summarise them per head."""
    from attnpatterns.extraction import RunError, open_run
    from attnpatterns.patterns import CheckpointError, KindMismatchError, MapError, load_classifier
    from attnpatterns.patterns.classify import (
        DEFAULT_NAME_PATTERN,
        RUN_TYPE,
        check_complete,
        classification_fingerprint,
        classifiers_for_kinds,
        classify_maps,
        classify_run,
    )
    from attnpatterns.patterns.io import DataError, read_npy_folder
    from attnpatterns.runfolder import RunExistsError, base_manifest, fingerprint, open_run_folder
    from attnpatterns.runtime import resolve_device

    check_kind(kind)
    wanted = None
    if kinds is not None:
        wanted = tuple(k.strip() for k in kinds.split(",") if k.strip())
        for k in wanted:
            check_kind(k, "--kinds")
    try:
        torch_device = resolve_device(device)
        given = {}
        for path in checkpoint or []:
            clf = load_classifier(path, device=torch_device)
            if clf.kind in given:
                raise ValueError(f"two checkpoints for {clf.kind} maps were given; pass one per kind")
            given[clf.kind] = clf
        if _is_extraction_run(run_dir):
            run = open_run(run_dir)
            check_complete(run)  # before the output folder is made
            needed = wanted or (tuple(given) if checkpoint else run.kinds)
            classifiers = classifiers_for_kinds(needed, given, torch_device)
            if not run.n_maps(needed):
                raise ValueError(
                    f"{run_dir} has no maps to classify ({len(run.examples)} examples x {len(run.heads)} heads, "
                    f"kinds {', '.join(run.kinds) or 'none'}); re-extract it with a head mask that keeps at least "
                    "one head, or choose --kinds that the run holds."
                )
            folder = open_run_folder(output, RUN_TYPE, classification_fingerprint(
                run.manifest.get("fingerprint"), classifiers, needed), overwrite)
            total = run.n_maps(needed)
            with progress_bar(total, quiet, "classifying", unit="map") as bar:
                table = classify_run(
                    run, classifiers, batch_size=batch_size, kinds=needed, progress=bar.update if bar else None
                )
        else:
            if len(given) > 1 and kind is None:
                raise ValueError("a folder of .npy maps holds one kind of map; say which with --kind")
            folder_kind = kind or next(iter(given), "raw")
            if given and folder_kind not in given:
                next(iter(given.values())).check_kind(folder_kind, where=str(run_dir))
            classifier = given.get(folder_kind) or load_classifier(None, kind=folder_kind, device=torch_device)
            names, arrays = read_npy_folder(run_dir)
            source = fingerprint([str(run_dir.resolve()), names, [a.shape for a in arrays], name_pattern])
            folder = open_run_folder(output, RUN_TYPE, classification_fingerprint(
                source, {folder_kind: classifier}), overwrite)
            table = classify_maps(
                names, arrays, classifier, batch_size, name_pattern or DEFAULT_NAME_PATTERN, source=str(run_dir)
            )
    except (RunError, CheckpointError, KindMismatchError, MapError, DataError, ValueError, RunExistsError) as err:
        raise fail(str(err))
    folder.start()  # status "running" until save() has written every table
    table.save(output, manifest_extra={**base_manifest(RUN_TYPE), "device": str(torch_device),
                                       "fingerprint": folder.fingerprint})
    if not quiet:
        counts = table.rows.groupby("kind")["label"].value_counts().unstack(fill_value=0)
        typer.echo(counts.to_string())
    typer.echo(f"classified {len(table)} maps -> {output}")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)

"""``attnpatterns extract`` and ``attnpatterns show``.

``extract`` writes attention maps to a run folder; ``show`` renders them to a picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import (
    DEFAULT_MODEL_OPT,
    AllowEmptyMaskOpt,
    DeviceOpt,
    HeadMaskOpt,
    MlpMaskOpt,
    ModelOpt,
    OverwriteOpt,
    QuietOpt,
    SeedOpt,
    fail,
)
from attnpatterns.cli.progress import progress_bar
from attnpatterns.constants import MAP_KINDS


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in MAP_KINDS]
    if bad or not kinds:
        raise typer.BadParameter(f"choose from {', '.join(MAP_KINDS)} (comma-separated), not {text!r}")
    return kinds


def extract(
    input_file: Annotated[
        Optional[Path],
        typer.Argument(help="Texts: .txt (one per line, TAB for pairs), .csv/.tsv/.jsonl. Default: built-in samples."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder to write.")] = Path("runs/extract"),
    model: ModelOpt = DEFAULT_MODEL_OPT,
    glue: Annotated[Optional[str], typer.Option("--glue", help="GLUE task (cola, sst2, mrpc, ...).")] = None,
    split: Annotated[str, typer.Option(help="Split of the GLUE task.")] = "validation",
    glue_dir: Annotated[
        Optional[Path], typer.Option(help="Offline GLUE folder in the classic layout (e.g. glue_data).")
    ] = None,
    samples: Annotated[
        Optional[str], typer.Option(help="Built-in samples: single, pairs or both (the default input).")
    ] = None,
    text_column: Annotated[
        Optional[list[str]], typer.Option("--text-column", help="Text column (give twice for pairs).")
    ] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Column with unique example ids.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Keep the first N examples (the paper used 100).")] = None,
    max_length: Annotated[int, typer.Option(help="Longer texts are truncated, with a warning.")] = 128,
    kinds: Annotated[str, typer.Option(help=(
        "Map kinds, comma-separated: raw, normed (per head); rollout, resln, alti, valuezero (per layer; "
        "valuezero recomputes each layer T + 1 times)."))] = "raw,normed",
    dtype: Annotated[str, typer.Option(help="Storage dtype: float16 or float32.")] = "float16",
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.", min=1)] = 16,
    head_mask: HeadMaskOpt = None,
    allow_empty_mask: AllowEmptyMaskOpt = False,
    mlp_mask: MlpMaskOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Extract raw and norm-weighted attention maps of every (kept) head into a resumable run folder."""
    from attnpatterns.data.records import InputError
    from attnpatterns.data.sources import load_inputs
    from attnpatterns.extraction import ExtractionConfig, RunExistsError, extract_maps
    from attnpatterns.masking.files import MaskError, load_head_mask, load_mlp_mask
    from attnpatterns.models import ModelLoadError, UnsupportedArchitectureError, load_model
    from attnpatterns.runtime import resolve_device, seed_everything

    config_kinds = _kinds(kinds)
    try:
        seed_everything(seed)
        examples, description = load_inputs(
            input_file, glue, split, glue_dir, samples, text_column, None, id_column, limit
        )
        config = ExtractionConfig(
            kinds=config_kinds, dtype=dtype, max_length=max_length, batch_size=batch_size, inputs=description
        )
        loaded = load_model(model, resolve_device(device))
        L, H = loaded.adapter.num_layers, loaded.adapter.num_heads
        hmask = load_head_mask(head_mask, L, H, allow_empty=allow_empty_mask) if head_mask else None
        mmask = load_mlp_mask(mlp_mask, L) if mlp_mask else None
        with progress_bar(len(examples), quiet, "extracting", unit="ex") as bar:
            run = extract_maps(
                loaded, examples, output, config, hmask, mmask, overwrite=overwrite,
                progress=bar.update if bar else None,
                manifest_extra={"seed": seed, "head_mask_file": str(head_mask) if head_mask else None,
                                "mlp_mask_file": str(mlp_mask) if mlp_mask else None},
            )
    except (InputError, MaskError, ModelLoadError, UnsupportedArchitectureError, RunExistsError, ValueError) as err:
        raise fail(str(err))
    if not quiet:
        typer.echo(f"{len(run)} examples x {len(run.heads)} heads x {len(run.kinds)} kinds -> {output}")


def show(
    run_dir: Annotated[Path, typer.Argument(help="Extraction run folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Picture to write (.png or .svg).")] = Path(
        "maps.png"
    ),
    example: Annotated[
        Optional[list[str]], typer.Option("--example", "-e", help="Example id (repeatable). Default: first.")
    ] = None,
    layer: Annotated[Optional[list[int]], typer.Option("--layer", "-l", help="Layer (repeatable).")] = None,
    head: Annotated[Optional[list[int]], typer.Option("--head", help="Original head id (repeatable).")] = None,
    kinds: Annotated[str, typer.Option(help="Kinds side by side (a per-layer kind shows its layer's map).")] = (
        "raw,normed"
    ),
    ncols: Annotated[int, typer.Option(help="(example, layer, head) groups per row.")] = 2,
    overwrite: OverwriteOpt = False,
) -> None:
    """Render a grid of maps (raw and normed side by side) with token labels and segment boundaries."""
    from attnpatterns.extraction import RunError, open_run
    from attnpatterns.plotting.maps import plot_map_grid

    if output.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise fail(f"--output must end in .png, .svg or .pdf, not {output.name!r}")
    if output.exists() and not overwrite:
        raise fail(f"{output} exists; choose another --output or pass --overwrite.")
    try:
        run = open_run(run_dir)
        examples = example or [run.examples[0].example_id]
        layers = layer if layer is not None else list(range(run.num_layers))
        heads = head if head is not None else sorted({h for _, h in run.heads})[:4]
        fig = plot_map_grid(run, examples, layers, heads, _kinds(kinds), ncols=ncols)
    except (RunError, ValueError) as err:
        raise fail(str(err))
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
    app.command("show")(show)

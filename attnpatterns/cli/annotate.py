"""``attnpatterns annotate ...``: build the annotation corpus, export sheets to label, import labels, agreement.

The annotation loop outside Jupyter::

    attnpatterns annotate build-corpus RUN_SINGLES RUN_PAIRS --per-kind 600 --seed 0
    attnpatterns annotate export-sheets --kind raw --unlabelled --limit 160 -o sheets/raw-1
    # look at sheets/raw-1/*.png, fill the label column of sheets/raw-1/labels.tsv
    attnpatterns annotate import-labels sheets/raw-1/labels.tsv --annotator NAME --method "..." --pass first
    attnpatterns annotate export-sheets --kind raw --pass second --annotator OTHER -o sheets/raw-2nd
    attnpatterns annotate agreement
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnpatterns.cli.options import SeedOpt, fail

CorpusOpt = Annotated[
    Optional[Path],
    typer.Option("--corpus", help="Corpus folder (default: the repository's annotations/)."),
]
KindOpt = Annotated[Optional[str], typer.Option("--kind", "-k", help="raw or normed (default: both).")]
PassOpt = Annotated[str, typer.Option("--pass", help="first, second (independent re-labelling) or adjudicated.")]


def _corpus(path: Optional[Path]) -> Path:
    from attnpatterns.annotation.corpus import DEFAULT_CORPUS_DIR

    return Path(path) if path is not None else DEFAULT_CORPUS_DIR


def _existing_corpus(path: Optional[Path]) -> Path:
    """The corpus folder of a command that only reads it: an error naming the path when it is not a corpus."""
    from attnpatterns.annotation.corpus import CorpusError, require_corpus

    try:
        return require_corpus(_corpus(path))
    except CorpusError as err:
        raise fail(str(err))


def _check_choice(value: Optional[str], choices, name: str) -> None:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=name)


def _parse_favour(values: list[str], option: str = "--favour") -> dict[tuple[str, str], int]:
    """``KIND:TYPE=N`` strings as ``{(kind, type): n}``; the type may be spelled as in a label TSV (``b``, ``vd``,
    ``Vertical + Diagonal``), or ``any`` for ``--uncertain``. Which kinds and types are allowed is checked by the
    sampler."""
    from attnpatterns.annotation.corpus import parse_label
    from attnpatterns.annotation.sampling import ANY_TYPE

    out = {}
    for value in values:
        try:
            target, n = value.rsplit("=", 1)
            kind, pattern = target.split(":", 1)
            pattern = ANY_TYPE if pattern.strip().lower() == ANY_TYPE else parse_label(pattern)
            out[(kind.strip(), pattern)] = int(n)
        except ValueError:
            example = "raw:block=40" if option == "--favour" else "normed:heterogeneous=40"
            raise typer.BadParameter(f"{value!r} is not KIND:TYPE=N (e.g. {example})", param_hint=option)
    return out


annotate_app = typer.Typer(
    help="Build and label the annotated-map corpus (see annotations/README.md, 'How to annotate').",
    no_args_is_help=True,
)


@annotate_app.command("build-corpus")
def build_corpus(
    runs: Annotated[list[Path], typer.Argument(help="Extraction run folders (e.g. one of singles, one of pairs).")],
    per_kind: Annotated[
        int, typer.Option("--per-kind", "-n", help="Maps to add per kind, split over the runs.", min=1)
    ] = 100,
    seed: SeedOpt = 0,
    kinds: Annotated[
        Optional[list[str]], typer.Option("--kind", "-k", help="Kinds to add (repeat); default all.")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Skip texts longer than this.")] = 64,
    balance: Annotated[str, typer.Option("--balance", help="none, or heuristic: even out heuristic types.")] = "none",
    favour: Annotated[
        Optional[list[str]],
        typer.Option("--favour", help="KIND:TYPE=N (repeat), e.g. raw:block=40: per run, first take the N maps "
                     "with the highest candidate score for a rare TYPE (block, vertical+diagonal); the score is "
                     "logged, never shown to annotators."),
    ] = None,
    uncertain: Annotated[
        Optional[list[str]],
        typer.Option("--uncertain", help="KIND:TYPE=N (repeat), e.g. normed:heterogeneous=40: per run, next take "
                     "the N maps the classifier is least sure of (smallest gap between its two most probable types) "
                     "among those with TYPE in their top two (any: all maps); logged, never shown to annotators."),
    ] = None,
    checkpoint: Annotated[
        Optional[list[Path]],
        typer.Option("--checkpoint", help="Classifier checkpoint for --uncertain (repeat, one per kind; its kind "
                     "is read from it); default: the shipped checkpoint of each kind."),
    ] = None,
    model_tag: Annotated[
        Optional[list[str]],
        typer.Option("--model-tag", help="Model tag per run (repeat, in run order) for ids; default from the run."),
    ] = None,
    text_prefix: Annotated[
        Optional[list[str]],
        typer.Option("--text-prefix", help="Text-id prefix per run (repeat); needed when two runs of one model "
                     "used different inputs with the same example ids."),
    ] = None,
    corpus: CorpusOpt = None,
) -> None:
    """Pick maps from extraction runs, spread over layers, heads and texts, and add them unlabelled."""
    from attnpatterns.annotation.sampling import BALANCES, RunSource, add_run_sample
    from attnpatterns.constants import MAP_KINDS
    from attnpatterns.extraction import RunError, open_run

    _check_choice(balance, BALANCES, "--balance")
    favoured = _parse_favour(favour or [])
    unsure = _parse_favour(uncertain or [], "--uncertain")
    classifiers = {}
    for path in checkpoint or []:
        from attnpatterns.patterns.checkpoint import CheckpointError, load_checkpoint

        try:
            clf = load_checkpoint(path)
        except (CheckpointError, FileNotFoundError) as err:
            raise fail(str(err))
        if clf.kind in classifiers:
            raise typer.BadParameter(f"two checkpoints for {clf.kind} maps; give at most one per kind",
                                     param_hint="--checkpoint")
        classifiers[clf.kind] = clf
    for k in kinds or []:
        _check_choice(k, MAP_KINDS, "--kind")
    for name, values in (("--model-tag", model_tag), ("--text-prefix", text_prefix)):
        if values and len(values) != len(runs):
            raise typer.BadParameter(f"give one {name} per run ({len(runs)}), got {len(values)}", param_hint=name)
    sources = []
    for i, path in enumerate(runs):
        try:
            run = open_run(path)
        except RunError as err:
            raise fail(str(err))
        sources.append(RunSource(run, model_tag[i] if model_tag else None, text_prefix[i] if text_prefix else ""))
    root = _corpus(corpus)
    try:
        new = add_run_sample(root, sources, per_kind, seed=seed, kinds=kinds, max_tokens=max_tokens,
                             balance=balance, favour=favoured, uncertain=unsure, classifiers=classifiers,
                             command=shlex.join(["attnpatterns", *sys.argv[1:]]))
    except ValueError as err:
        raise fail(str(err))
    typer.echo(f"added {len(new)} maps to {root} (log: {root / 'corpus_log.jsonl'})")


@annotate_app.command("import-npy")
def import_npy(
    folder: Annotated[Path, typer.Argument(help="Folder of <name>.npy maps (optional <name>.json beside each).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name (default: folder name).")] = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="raw or normed, unless a .json says otherwise.")] = "raw",
    corpus: CorpusOpt = None,
) -> None:
    """Add a folder of .npy maps to the corpus (unlabelled)."""
    from attnpatterns.annotation.sampling import import_npy_folder

    root = _corpus(corpus)
    try:
        new = import_npy_folder(root, folder, model=model, kind=kind)
    except ValueError as err:
        raise fail(str(err))
    typer.echo(f"added {len(new)} maps to {root}")


@annotate_app.command("export-sheets")
def export_sheets_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="New folder for the sheets and labels.tsv.")],
    kind: KindOpt = None,
    unlabelled: Annotated[bool, typer.Option("--unlabelled", help="Maps without a label (= --pass first).")] = False,
    pass_: PassOpt = "first",
    annotator: Annotated[
        Optional[str], typer.Option("--annotator", "-a", help="Who will label (needed for --pass second).")
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", help="At most this many maps (default all).", min=1)
    ] = None,
    per_sheet: Annotated[int, typer.Option("--per-sheet", help="Maps per sheet.", min=1)] = 16,
    ncols: Annotated[int, typer.Option("--ncols", help="Columns per sheet.", min=1)] = 4,
    order: Annotated[str, typer.Option("--order", help="corpus or random (seeded).")] = "corpus",
    fraction: Annotated[float, typer.Option("--fraction", help="Second pass: share of labelled maps.")] = 0.2,
    shard: Annotated[
        Optional[str], typer.Option("--shard", help="K/N: only the K-th of N disjoint parts (parallel annotators).")
    ] = None,
    seed: SeedOpt = 0,
    blind: Annotated[
        bool, typer.Option("--blind", help="Opaque tokens instead of map ids (which name layer, head and text) in "
                           "the TSV; the key stays in the corpus (blind_keys.jsonl), so the folder names no map; import "
                           "translates them back.")
    ] = False,
    map_ids: Annotated[
        Optional[Path],
        typer.Option("--map-ids", help="A re-look: export exactly the map ids in this file (one per line) for --pass "
                     "first or second, whatever labels they have; --kind, --shard, --order and --limit still apply."),
    ] = None,
    corpus: CorpusOpt = None,
) -> None:
    """Write numbered sheets (PNG) of maps to label and a TSV template sheet_id/cell/map_id/label to fill in.

    --pass second picks a seeded random --fraction of the labelled maps of each kind (never maps the annotator
    labelled first) and does not show the first labels; --pass adjudicated picks maps whose passes disagree.
    """
    from attnpatterns.annotation.corpus import PASSES
    from attnpatterns.annotation.sheets import ORDERS, export_sheets, parse_shard, select_for_export
    from attnpatterns.constants import MAP_KINDS

    _check_choice(kind, MAP_KINDS, "--kind")
    _check_choice(pass_, PASSES, "--pass")
    _check_choice(order, ORDERS, "--order")
    if unlabelled and pass_ != "first":
        raise typer.BadParameter("--unlabelled selects first-pass work; leave it out with --pass " + pass_)
    if pass_ == "second" and not annotator:
        raise typer.BadParameter("the second pass needs --annotator (who must not have labelled them first)")
    try:
        shard_t = parse_shard(shard)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--shard")
    root = _existing_corpus(corpus)
    only = None
    if map_ids is not None:
        try:
            only = map_ids.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError) as err:
            raise typer.BadParameter(f"cannot read {map_ids}: {err}; give a text file of map ids, one per line",
                                     param_hint="--map-ids")
        if unlabelled:
            raise typer.BadParameter("--map-ids names the maps itself; leave out --unlabelled", param_hint="--map-ids")
    try:
        ids = select_for_export(root, annotator or "", pass_, kind, limit, order, seed, fraction, shard_t, only)
    except ValueError as err:
        raise fail(str(err))
    if not ids:
        typer.echo("nothing to export: no maps need a label for this pass/kind/shard")
        raise typer.Exit(0)
    prefix = "-".join(x for x in (kind or "all", pass_, shard and shard.replace("/", "of")) if x)
    info = {"kind": kind, "annotator": annotator, "limit": limit, "order": order, "seed": seed,
            "fraction": fraction if pass_ == "second" and only is None else None, "shard": shard,
            **({"map_ids": str(map_ids)} if only is not None else {})}
    try:
        result = export_sheets(root, output, ids, pass_=pass_, per_sheet=per_sheet, ncols=ncols,
                               sheet_prefix=prefix, info=info, blind=blind)
    except FileExistsError as err:
        raise fail(str(err))
    typer.echo(f"wrote {len(result.sheets)} sheet(s) with {len(ids)} maps to {output}")
    typer.echo(f"fill in the label column of {result.template}, then run:")
    typer.echo(f"  attnpatterns annotate import-labels {result.template} --annotator {annotator or 'NAME'} "
               f"--method \"...\" --pass {pass_}" + (f" --corpus {corpus}" if corpus else ""))


@annotate_app.command("import-labels")
def import_labels_cmd(
    tsv: Annotated[Path, typer.Argument(help="A filled-in labels.tsv (columns map_id and label at least).")],
    annotator: Annotated[str, typer.Option("--annotator", "-a", help="Who labelled (person or agent name).")],
    method: Annotated[str, typer.Option("--method", help="How, e.g. 'agent viewed exported PNG sheets'.")],
    pass_: PassOpt = "first",
    note: Annotated[str, typer.Option("--note", help="Free text stored on every row.")] = "",
    corpus: CorpusOpt = None,
) -> None:
    """Append the labels of a filled-in TSV to labels.csv (all rows validated first; empty labels skipped).

    Labels may be the five names in any case/spacing or the shorthands v, d, vd, b, h.
    """
    from attnpatterns.annotation.corpus import PASSES
    from attnpatterns.annotation.sheets import import_labels

    _check_choice(pass_, PASSES, "--pass")
    if tsv.is_dir():
        raise fail(f"{tsv} is a folder; pass the filled-in labels.tsv inside it (e.g. {tsv / 'labels.tsv'})")
    if not tsv.is_file():
        raise fail(f"{tsv} does not exist; pass the labels.tsv written by `attnpatterns annotate export-sheets`")
    root = _existing_corpus(corpus)
    try:
        result = import_labels(root, tsv, annotator, method, pass_, note)
    except ValueError as err:
        raise fail(str(err))
    typer.echo(f"imported {len(result.written)} label(s) into {root / 'labels.csv'} "
               f"({result.n_empty} empty row(s) skipped, {len(result.relabelled)} relabel(s))")
    if result.collapsed:
        typer.echo(f"note: {len(result.collapsed)} map id(s) appeared on several rows with the same label and were "
                   f"imported once: {', '.join(result.collapsed)}")


@annotate_app.command("agreement")
def agreement_cmd(
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Folder for agreement.json (default: the corpus).")
    ] = None,
    corpus: CorpusOpt = None,
) -> None:
    """Cohen's kappa and the confusion matrix between the first and second pass, per kind; writes agreement.json."""
    from attnpatterns.annotation.agreement import agreement_text, pass_agreement, save_agreement
    from attnpatterns.annotation.corpus import read_labels, read_map_index

    root = _existing_corpus(corpus)
    result = pass_agreement(read_labels(root), read_map_index(root))
    try:
        path = save_agreement(result, Path(output) if output is not None else root)
    except FileExistsError as err:
        raise fail(str(err))
    typer.echo("\n" + agreement_text(result))
    typer.echo(f"\nwrote {path}")


@annotate_app.command("summary")
def summary_cmd(corpus: CorpusOpt = None) -> None:
    """Per-kind counts of effective labels (a markdown table for annotations/README.md) and pass coverage."""
    from attnpatterns.annotation.agreement import label_counts, pass_pairs
    from attnpatterns.annotation.corpus import read_labels, read_map_index
    from attnpatterns.annotation.selection import disagreements
    from attnpatterns.constants import PATTERN_TYPES

    root = _existing_corpus(corpus)
    rows, index = read_labels(root), read_map_index(root)
    counts = label_counts(rows, index)
    cols = [*PATTERN_TYPES, "total", "unlabelled"]
    typer.echo("| kind | " + " | ".join(cols) + " |")
    typer.echo("|---" * (len(cols) + 1) + "|")
    for kind, c in counts.items():
        typer.echo(f"| {kind} | " + " | ".join(str(c[k]) for k in cols) + " |")
    typer.echo(f"\nmaps: {len(index)}; label rows: {len(rows)}; annotators: "
               f"{', '.join(sorted({r.annotator for r in rows})) or '-'}")
    typer.echo(f"second-pass pairs: {len(pass_pairs(rows))}; open disagreements: {len(disagreements(rows))}")


@annotate_app.command("guideline-figures")
def guideline_figures_cmd(
    run: Annotated[Path, typer.Argument(help="Extraction run the examples come from.")],
    spec: Annotated[Path, typer.Option("--spec", help="JSON list of example maps per figure.")] = Path(
        "annotations/figures/examples.json"
    ),
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the PNGs.")] = Path(
        "annotations/figures"
    ),
) -> None:
    """Redraw the example pictures of annotations/GUIDELINE.md from an extraction run."""
    from attnpatterns.annotation.guideline import read_spec, render_guideline_figures
    from attnpatterns.extraction import RunError, open_run

    try:
        written = render_guideline_figures(open_run(run), read_spec(spec), output)
    except (RunError, ValueError, OSError) as err:
        raise fail(str(err))
    typer.echo(f"wrote {len(written)} figure(s) to {output}")


@annotate_app.command("columns")
def columns_cmd(
    map_ids: Annotated[Optional[list[str]], typer.Argument(help="Corpus map ids to measure (default: none).")] = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="raw or normed, for the rule tables.")] = "raw",
    run: Annotated[
        Optional[Path], typer.Option("--run", help="Measure the guideline examples, read from this extraction run.")
    ] = None,
    spec: Annotated[Path, typer.Option("--spec", help="Guideline example spec (with --run).")] = Path(
        "annotations/figures/examples.json"
    ),
    corpus: CorpusOpt = None,
) -> None:
    """How many content rows light the [CLS]/[SEP] columns (GUIDELINE.md section 8), and how well the section's
    rules reproduce the corpus labels (vertical+diagonal against diagonal; vertical against block in pairs)."""
    from attnpatterns.annotation.columns import LEVEL_COLOURS, LEVELS, coverage_line, rule_tables
    from attnpatterns.annotation.corpus import load_corpus, read_arrays, read_map_index
    from attnpatterns.constants import MAP_KINDS

    _check_choice(kind, MAP_KINDS, "--kind")
    root = _existing_corpus(corpus) if map_ids or run is None else _corpus(corpus)
    index = {m["map_id"]: m for m in read_map_index(root)} if map_ids else {}
    unknown = [m for m in map_ids or [] if m not in index]
    if unknown:
        raise fail(f"not in the corpus {root}: {', '.join(unknown)} (see maps.jsonl for the ids)")
    typer.echo("share of the content rows (no [CLS] or [SEP] rows) whose cell reaches "
               + ", ".join(f"{level:g} ({LEVEL_COLOURS[level]})" for level in LEVELS) + " of the map maximum")

    def show(name: str, array, tokens) -> None:
        typer.echo(coverage_line(name, array, tokens))

    if map_ids:
        arrays = read_arrays(root, map_ids)
        for map_id in map_ids:
            show(map_id, arrays[map_id], index[map_id]["tokens"])
    if run is not None:
        from attnpatterns.annotation.guideline import read_spec
        from attnpatterns.extraction import RunError, open_run

        try:
            opened, figures = open_run(run), read_spec(spec)["figures"]
            for figure, fig_spec in figures.items():
                for i, m in enumerate(fig_spec["maps"]):
                    ex = opened.example(m["example_id"])
                    array = opened.get_map(m["example_id"], int(m["layer"]), int(m["head"]), m["kind"])
                    show(f"{figure} {chr(ord('a') + i)} ({m['kind']} L{m['layer']}H{m['head']} {m['example_id']})",
                         array, ex.tokens)
        except (RunError, ValueError, OSError, KeyError) as err:
            raise fail(str(err))
    if map_ids or run is not None:
        return
    try:
        typer.echo(rule_tables(load_corpus(root, kind=kind), kind))
    except ValueError as err:
        raise fail(f"{err} (kind {kind}, corpus {root})")


def register(app: typer.Typer) -> None:
    app.add_typer(annotate_app, name="annotate")

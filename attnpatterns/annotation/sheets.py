"""Annotating outside Jupyter: export numbered sheets of maps plus a TSV to fill in, and import the filled TSV.

An export folder holds ``<sheet_id>.png`` (a grid of maps, each cell with a big number) and ``labels.tsv`` with
one row per cell: ``sheet_id<TAB>cell<TAB>map_id<TAB>label`` (label empty, to be filled in). For the adjudication
pass the TSV also has ``first_label`` and ``second_label`` columns (the two answers to choose between); the first
and second passes never show an earlier label. ``export.json`` records what was exported, for whom and how.

With ``blind=True`` the ``map_id`` column holds opaque tokens (``b-`` and ten hex digits) instead of map ids, which
name the model, layer, head and text and could sway an annotator. The token -> map id table is kept in the corpus,
in ``blind_keys.jsonl`` (one line per blind export, appended atomically under a lock), not in the folder that goes to
the annotator, so nothing in that folder names a map; import translates the tokens back, so a blind TSV imports
into the corpus it was exported from like any other. (Exports made before this kept the table in their
``export.json``; import still reads it there.)

Import validates every row before writing any (labels through :func:`~attnpatterns.annotation.corpus.parse_label`,
so ``v``/``Vertical``/``vertical + diagonal`` all work), skips rows left empty, and appends the rest to
``labels.csv`` in one atomic write. A map id that appears on several filled-in rows is imported once when every
row gives it the same label (the import result lists it under ``collapsed``) and refuses the whole file when the
rows disagree (the error names the ids and their lines): one labelling act per map and pass.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from attnpatterns.annotation.corpus import (
    LabelRow,
    append_labels,
    append_lines,
    parse_label,
    read_arrays,
    read_labels,
    read_map_index,
    require_corpus,
)
from attnpatterns.annotation.labels import read_label_text
from attnpatterns.annotation.render import SheetCell, render_sheet
from attnpatterns.annotation.selection import DEFAULT_SECOND_FRACTION, disagreements, pending_map_ids

TEMPLATE_FILE = "labels.tsv"
EXPORT_MANIFEST_FILE = "export.json"
#: The corpus file with every blind export's token -> map id table (one JSON object per line).
BLIND_KEYS_FILE = "blind_keys.jsonl"
BLIND_TOKEN = re.compile(r"b-[0-9a-f]{10}")
TEMPLATE_COLUMNS = ("sheet_id", "cell", "map_id", "label")
ADJUDICATION_COLUMNS = ("sheet_id", "cell", "map_id", "first_label", "second_label", "label")
ORDERS = ("corpus", "random")


@dataclass
class ExportResult:
    out_dir: Path
    sheets: list[Path]
    template: Path
    map_ids: list[str]
    info: dict = field(default_factory=dict)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/4"`` -> (2, 4): the second of four disjoint parts (1-based); None -> None."""
    if text is None:
        return None
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard {text!r} must look like K/N, e.g. 1/3") from None
    if not 1 <= k <= n:
        raise ValueError(f"shard {text!r}: K must be between 1 and N")
    return k, n


def in_shard(map_id: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(map_id.encode()).hexdigest(), 16) % n == k - 1


def select_for_export(
    root: str | Path,
    annotator: str,
    pass_: str = "first",
    kind: str | None = None,
    limit: int | None = None,
    order: str = "corpus",
    seed: int = 0,
    second_fraction: float = DEFAULT_SECOND_FRACTION,
    shard: tuple[int, int] | None = None,
    only: Sequence[str] | None = None,
) -> list[str]:
    """The map ids ``annotator`` should label next in ``pass_`` (see :func:`pending_map_ids`), at most ``limit``.

    ``only`` (a re-look at chosen maps, e.g. those a restated rule of the guideline may move) replaces the work queue:
    exactly these ids, in corpus order, whatever labels they have; ``kind``, ``shard``, ``order`` and ``limit`` still
    apply. Ids that are not in the corpus raise ``ValueError``.
    """
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of {', '.join(ORDERS)}")
    if only is not None:
        index = read_map_index(root)
        wanted = {m.strip() for m in only if m.strip()}
        missing = sorted(wanted - {m["map_id"] for m in index})
        if missing:
            raise ValueError(f"{len(missing)} map id(s) are not in the corpus {root}: {', '.join(missing[:5])}"
                             + (", ..." if len(missing) > 5 else ""))
        ids = [m["map_id"] for m in index if m["map_id"] in wanted and (kind is None or m["kind"] == kind)]
    else:
        ids = pending_map_ids(read_labels(root), read_map_index(root), annotator, pass_, kind, second_fraction, seed)
    ids = [m for m in ids if in_shard(m, shard)]
    if order == "random":
        random.Random(seed).shuffle(ids)
    return ids[:limit] if limit is not None else ids


def export_sheets(
    root: str | Path,
    out_dir: str | Path,
    map_ids: list[str],
    pass_: str = "first",
    per_sheet: int = 16,
    ncols: int = 4,
    sheet_prefix: str = "sheet",
    info: dict | None = None,
    blind: bool = False,
) -> ExportResult:
    """Render ``map_ids`` onto numbered sheets in ``out_dir`` and write the TSV template to fill in (with opaque
    tokens in the ``map_id`` column when ``blind``)."""
    import matplotlib.pyplot as plt

    root, out_dir = Path(root), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        what = f"{out_dir / TEMPLATE_FILE} already exists" if (out_dir / TEMPLATE_FILE).exists() else (
            f"{out_dir} is not an empty folder")
        raise FileExistsError(
            f"{what}; nothing was written. Export into a new folder (filled-in labels and other files are never "
            "overwritten)."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {m["map_id"]: m for m in read_map_index(root)}
    arrays = read_arrays(root, map_ids)
    open_cases = disagreements(read_labels(root)) if pass_ == "adjudicated" else {}
    columns = ADJUDICATION_COLUMNS if pass_ == "adjudicated" else TEMPLATE_COLUMNS
    rows, sheets = [], []
    batch = hashlib.sha256("\n".join(map_ids).encode()).hexdigest()[:4]  # sheet ids differ between batches
    tokens = {m: "b-" + hashlib.sha256(f"{batch}:{m}".encode()).hexdigest()[:10] for m in map_ids} if blind else {}
    for s, start in enumerate(range(0, len(map_ids), per_sheet)):
        sheet_id = f"{sheet_prefix}-{batch}-{s + 1:03d}"
        chunk = map_ids[start:start + per_sheet]
        cells = []
        for c, map_id in enumerate(chunk, start=1):
            meta = index[map_id]
            cells.append(SheetCell(arrays[map_id], meta["tokens"], meta["segment_ids"], number=c,
                                   caption=f"{meta['kind']} · {meta['text_kind']} · {meta['n_tokens']} tok"))
            row = {"sheet_id": sheet_id, "cell": c, "map_id": tokens.get(map_id, map_id), "label": ""}
            if pass_ == "adjudicated":
                row["first_label"], row["second_label"] = open_cases.get(map_id, ("", ""))
            rows.append(row)
        fig = render_sheet(cells, ncols=ncols, title=sheet_id, slots=per_sheet)
        path = out_dir / f"{sheet_id}.png"
        fig.savefig(path)
        plt.close(fig)
        sheets.append(path)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if blind:  # the key stays with the corpus: the folder may go to the annotator as it is
        # saved before the sheet's table: a table whose key was never saved could be filled in but never imported
        _save_blind_key(root, {"date": date, "batch": batch, "out_dir": str(out_dir),
                               "blind_ids": {t: m for m, t in tokens.items()}})
    template = out_dir / TEMPLATE_FILE
    with open(template, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    info = {
        "date": date, "corpus": str(root), "pass": pass_, "n_maps": len(map_ids), "n_sheets": len(sheets),
        **(info or {}), "blind": blind, **({"blind_key": f"{BLIND_KEYS_FILE} of the corpus, batch {batch}"}
                                           if blind else {}),
    }
    (out_dir / EXPORT_MANIFEST_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return ExportResult(out_dir, sheets, template, list(map_ids), info)


@dataclass
class ImportResult:
    written: list[LabelRow]
    n_empty: int
    relabelled: list[str]
    collapsed: list[str] = field(default_factory=list)  #: map ids given the same label on several rows

    def to_dict(self) -> dict:
        return {"written": len(self.written), "empty": self.n_empty, "relabelled": self.relabelled,
                "collapsed": self.collapsed}


def _save_blind_key(root: Path, record: dict) -> None:
    """Append one blind export's token table to the corpus's :data:`BLIND_KEYS_FILE` (atomic, under a lock)."""
    append_lines(root / BLIND_KEYS_FILE, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def _blind_ids(tsv: Path, root: Path) -> dict[str, str]:
    """The token -> map id table of every blind export of the corpus at ``root`` (its :data:`BLIND_KEYS_FILE`),
    plus the table an older export kept in the ``export.json`` next to the TSV."""
    table: dict[str, str] = {}
    sources = []
    keys = root / BLIND_KEYS_FILE
    if keys.is_file():
        for number, line in enumerate(keys.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    sources.append((f"{keys}:{number}", dict(json.loads(line)["blind_ids"])))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise ValueError(f"line {number} of {keys} is damaged; restore it from version control (it "
                                     "holds the blind exports' keys)") from None
    manifest = tsv.parent / EXPORT_MANIFEST_FILE
    if manifest.is_file():
        try:
            sources.append((str(manifest), dict(json.loads(manifest.read_text(encoding="utf-8")).get("blind_ids")
                                                or {})))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            raise ValueError(f"{manifest} is damaged; re-export the sheets (a blind TSV needs it to find its maps)")
    for where, ids in sources:
        for token, map_id in ids.items():
            if table.setdefault(token, map_id) != map_id:
                raise ValueError(f"blind token {token} stands for two maps ({table[token]} and {map_id}, in "
                                 f"{where}); re-export these sheets")
    return table


def import_labels(root: str | Path, tsv: str | Path, annotator: str, method: str, pass_: str = "first",
                  note: str = "") -> ImportResult:
    """Append the labels of a filled-in TSV (columns ``map_id`` and ``label`` at least) to the corpus.

    Every row is checked first; if any label is unknown, any map id is not in the corpus, one map id has rows with
    different labels or a row has a value past the header's last column (a label typed one tab too far), nothing is
    written and the ``ValueError`` lists every bad row with its line number (rows repeating a map id with the same
    label are imported once and listed in ``collapsed``). Rows with an empty label are skipped. An optional
    ``note`` column is kept with each row (after ``note``, which applies to every row). In the second pass, maps
    whose first label came from the same annotator are refused (the passes must be independent).
    """
    if not method.strip():
        raise ValueError("say how the labels were made (--method), e.g. 'agent viewed exported sheets'")
    root, tsv = require_corpus(root), Path(tsv)
    expected = f"a tab-separated table with the header {' '.join(TEMPLATE_COLUMNS)} (as export-sheets writes)"
    reader = csv.DictReader(io.StringIO(read_label_text(tsv, expected, ValueError), newline=""), delimiter="\t")
    missing = {"map_id", "label"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{tsv} has no column(s) {', '.join(sorted(missing))}; expected the header "
                         f"{chr(9).join(TEMPLATE_COLUMNS)} (tab-separated)")
    lines = list(reader)
    blind_ids = _blind_ids(tsv, root)
    unknown_tokens = []
    for line in lines:  # a blind export's tokens back to map ids
        token = (line.get("map_id") or "").strip()
        line["map_id"] = blind_ids.get(token, token)
        if BLIND_TOKEN.fullmatch(token) and token not in blind_ids:
            unknown_tokens.append(token)
    if unknown_tokens:
        raise ValueError(
            f"{len(unknown_tokens)} blind id(s) of {tsv} ({', '.join(unknown_tokens[:3])}, ...) are in no blind key "
            f"of {root / BLIND_KEYS_FILE}; import into the corpus the sheets were exported from (--corpus)")
    known = {m["map_id"] for m in read_map_index(root)}
    rows = read_labels(root)
    first_by_me = {r.map_id for r in rows if r.pass_ != "second" and r.annotator == annotator.strip()}
    labelled_before = {r.map_id for r in rows if r.pass_ == pass_}
    errors, parsed, n_empty = [], [], 0
    seen: dict[str, tuple[int, str]] = {}  # map id -> (line, label) of its first filled-in row
    conflicts: dict[str, list[str]] = {}
    collapsed: list[str] = []
    for lineno, line in enumerate(lines, start=2):
        map_id, text = (line.get("map_id") or "").strip(), (line.get("label") or "").strip()
        beyond = [v.strip() for v in line.get(None) or [] if v and v.strip()]  # DictReader's fields past the header
        if beyond:  # e.g. a label typed one tab too far: the annotator's work, never skipped as an empty row
            errors.append(f"line {lineno}: {', '.join(map(repr, beyond[:3]))} after the last column of the header; "
                          "put the label in the label column")
            continue
        if not text:
            n_empty += 1
            continue
        if map_id not in known:
            errors.append(f"line {lineno}: map id {map_id!r} is not in the corpus")
            continue
        if pass_ == "second" and map_id in first_by_me:
            errors.append(f"line {lineno}: {map_id} was first labelled by {annotator}; the second pass must be "
                          "another annotator")
            continue
        try:
            label = parse_label(text)
        except ValueError as err:
            errors.append(f"line {lineno}: {err}")
            continue
        if map_id in seen:
            first_line, first_label = seen[map_id]
            if label != first_label:
                conflicts.setdefault(map_id, [f"line {first_line}: {first_label}"]).append(f"line {lineno}: {label}")
            elif map_id not in collapsed:
                collapsed.append(map_id)
            continue
        seen[map_id] = (lineno, label)
        row_note = " ".join((line.get("note") or "").split())  # the TSV's own note column, one line
        parsed.append(LabelRow(map_id=map_id, label=label, annotator=annotator, method=method, pass_=pass_,
                               note="; ".join(n for n in (note.strip(), row_note) if n)))
    errors += [f"map id {m} has conflicting labels ({'; '.join(where)}); keep one row per map" for m, where in
               conflicts.items()]
    if errors:
        what = f" (conflicting labels for map id(s) {', '.join(conflicts)})" if conflicts else ""
        raise ValueError(f"{tsv}: {len(errors)} bad row(s){what}, nothing imported:\n  " + "\n  ".join(errors))
    written = append_labels(root, parsed)
    return ImportResult(written, n_empty, sorted({r.map_id for r in written} & labelled_before), collapsed)


"""Readers for the user's own text files: plain text (one text per line, tab-separated pairs), CSV/TSV and JSONL.

All readers return :class:`~attnpatterns.data.records.TextExample` lists and fail with an :class:`InputError` that
names the problem and the fix: an empty file, a file that is not UTF-8, missing or misnamed columns. Lines end at LF
or CRLF only; CSV fields may be quoted (and then hold commas, quotes and line breaks); TSV fields are literal, as in
GLUE's files (a quote is a character of the text).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from attnpatterns.data.records import InputError, TextExample

TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


#: What the readers accept, for error messages.
ACCEPTED = "a UTF-8 text file: .txt (one text per line, TAB for pairs) or .csv/.tsv/.jsonl with a header"


def _read_utf8(path: Path) -> str:
    if path.is_dir():
        raise InputError(f"{path} is a folder; pass {ACCEPTED}.")
    if not path.is_file():
        raise InputError(f"input file {path} does not exist.")
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputError(f"{path} is UTF-16; re-save it as UTF-8, e.g. `iconv -f utf-16 -t utf-8 {path.name}`.")
    if b"\x00" in data[:8192]:
        raise InputError(f"{path} is a binary file, not text; pass {ACCEPTED}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path} is not UTF-8 (byte {err.start}: {err.reason}). Re-save it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`."
        ) from err
    if not text.strip():
        raise InputError(f"{path} is empty; give it one text per line (or a pair separated by a tab).")
    return text


def _lines(text: str) -> list[str]:
    """The file's lines, ended by LF or CRLF only: ``str.splitlines`` would also end a line at a form feed (as in
    pdftotext output), a vertical tab, U+0085, U+2028 or U+2029, which are characters of a text here."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def read_text_file(path: Path | str) -> list[TextExample]:
    """One text per line; a line with a tab is a sentence pair ``a<TAB>b``. Blank lines are skipped.

    Example ids are the 0-based line numbers, so they stay stable when the file is read again.
    """
    path = Path(path)
    out: list[TextExample] = []
    for lineno, line in enumerate(_lines(_read_utf8(path))):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) > 2:
            raise InputError(f"{path}:{lineno + 1} has {len(parts)} tab-separated fields; use at most two (a pair).")
        a = parts[0].strip()
        b = parts[1].strip() if len(parts) == 2 else None
        if not a or (b is not None and not b):
            raise InputError(f"{path}:{lineno + 1} has an empty text; remove the line or fill it in.")
        out.append(TextExample(example_id=str(lineno), text_a=a, text_b=b))
    return out


def _rows_from_table(path: Path) -> tuple[list[dict], list[str]]:
    text = _read_utf8(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = []
        for lineno, line in enumerate(_lines(text)):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{lineno + 1} is not valid JSON ({err.msg}); write one object per line.")
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno + 1} is not a JSON object; write one object per line.")
            rows.append(row)
        columns = sorted({k for r in rows for k in r})
        return rows, columns
    # CSV: quoted fields may hold commas, doubled quotes and line breaks (hence the file read as one stream, with
    # newline="" as the csv module asks). TSV: fields are literal, as in GLUE's files, so a text that starts with a
    # quote does not open a field that runs on over the next rows; a TSV field cannot hold a tab or a line break.
    delimiter = "\t" if suffix == ".tsv" else ","
    quoting = csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    rows = []
    for r in reader:
        # DictReader files extra fields under None and fills missing ones with None: both mean a shifted row.
        n_fields = len(r) - 1 + len(r[None]) if None in r else sum(v is not None for v in r.values())
        if n_fields != len(reader.fieldnames or []):
            sep = "tab" if delimiter == "\t" else "comma"
            fix = "quote fields that contain a comma" if sep == "comma" else "a TSV field cannot hold a tab"
            raise InputError(
                f"{path}:{reader.line_num} has {n_fields} {sep}-separated field(s) but the header has "
                f"{len(reader.fieldnames or [])} ({', '.join(reader.fieldnames or [])}); fix the row ({fix})."
            )
        rows.append(dict(r))
    return rows, list(reader.fieldnames or [])


def read_table(
    path: Path | str,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
) -> list[TextExample]:
    """Read a CSV/TSV (with a header) or JSONL file with named columns.

    ``text_columns``: one column (single texts) or two (pairs). When omitted, the first of ``sentence``/``text``
    is used, or the pair ``sentence1``/``sentence2`` (also ``premise``/``hypothesis``, ``question1``/``question2``).
    """
    path = Path(path)
    rows, columns = _rows_from_table(path)
    if not rows:
        raise InputError(f"{path} has a header but no rows; add at least one example.")
    if not text_columns:
        text_columns = guess_text_columns(columns)
        if text_columns is None:
            raise InputError(
                f"{path}: cannot tell which columns hold the text (columns: {', '.join(columns)}). "
                "Name them with --text-column (twice for pairs)."
            )
    text_columns = list(text_columns)
    if not 1 <= len(text_columns) <= 2:
        raise InputError("give one text column (single texts) or two (sentence pairs).")
    wanted = text_columns + [c for c in (label_column, id_column) if c]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise InputError(
            f"{path} has no column {', '.join(repr(m) for m in missing)}; its columns are: {', '.join(columns)}. "
            "Fix the column names with --text-column / --label-column / --id-column."
        )
    out = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        for c in text_columns:
            if isinstance(row.get(c), (list, dict)):
                raise InputError(f"{path}: row {i + 1}'s {c!r} is a JSON {type(row[c]).__name__}, not a string; "
                                 "write each text as one string (join pre-tokenised words with spaces).")
        texts = [str(row.get(c) or "").strip() for c in text_columns]
        if not all(texts):
            raise InputError(f"{path}: row {i + 1} has an empty {'/'.join(text_columns)}; fill it in or drop it.")
        example_id = str(row[id_column]) if id_column else str(i)
        if example_id in seen:
            raise InputError(f"{path}: id {example_id!r} appears twice in column {id_column!r}; ids must be unique.")
        seen.add(example_id)
        label = row.get(label_column) if label_column else None
        out.append(
            TextExample(
                example_id=example_id,
                text_a=texts[0],
                text_b=texts[1] if len(texts) == 2 else None,
                label=label,
            )
        )
    return out


_COLUMN_GUESSES = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("text_a", "text_b"),
    ("sentence",),
    ("text",),
)


def guess_text_columns(columns: Sequence[str]) -> list[str] | None:
    present = set(columns)
    for guess in _COLUMN_GUESSES:
        if all(c in present for c in guess):
            return list(guess)
    return None


def read_input_file(
    path: Path | str,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
) -> list[TextExample]:
    """Dispatch on the suffix: ``.txt`` is plain text, ``.csv``/``.tsv``/``.jsonl`` are tables."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES or (suffix not in TABLE_SUFFIXES and not text_columns):
        if text_columns or label_column or id_column:
            raise InputError(f"{path} is plain text; column options only apply to .csv/.tsv/.jsonl files.")
        return read_text_file(path)
    return read_table(path, text_columns, label_column, id_column)

"""Input readers: plain text, tables, GLUE's classic layout, and the clear errors for bad files."""

from __future__ import annotations

import json

import pytest

from attnpatterns.data.files import read_input_file
from attnpatterns.data.glue import load_glue
from attnpatterns.data.records import InputError
from attnpatterns.data.sources import load_inputs


def test_text_file_singles_and_pairs(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("First sentence here.\n\nA premise.\tA hypothesis.\n", encoding="utf-8")
    ex = read_input_file(f)
    assert [e.example_id for e in ex] == ["0", "2"]
    assert ex[0].text_b is None and ex[1].text_b == "A hypothesis."


def test_csv_tsv_jsonl_with_named_columns(tmp_path):
    (tmp_path / "a.csv").write_text('id,premise,hypothesis\nx1,"A, with comma",B\nx2,C,D\n', encoding="utf-8")
    ex = read_input_file(tmp_path / "a.csv", id_column="id")
    assert [(e.example_id, e.text_a, e.text_b) for e in ex] == [("x1", "A, with comma", "B"), ("x2", "C", "D")]
    (tmp_path / "b.tsv").write_text("text\tlabel\nhello there\t1\n", encoding="utf-8")
    ex = read_input_file(tmp_path / "b.tsv", text_columns=["text"], label_column="label")
    assert ex[0].text_a == "hello there" and ex[0].label == "1"
    (tmp_path / "c.jsonl").write_text(json.dumps({"sentence": "one"}) + "\n" + json.dumps({"sentence": "two"}))
    assert [e.text_a for e in read_input_file(tmp_path / "c.jsonl")] == ["one", "two"]


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "e.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        read_input_file(tmp_path / "e.txt")
    (tmp_path / "h.csv").write_text("sentence\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        read_input_file(tmp_path / "h.csv")


def test_missing_or_misnamed_columns(tmp_path):
    (tmp_path / "a.csv").write_text("sentance,label\nhi,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="cannot tell which columns"):
        read_input_file(tmp_path / "a.csv")
    with pytest.raises(InputError, match=r"no column 'sentence'.*sentance.*--text-column"):
        read_input_file(tmp_path / "a.csv", text_columns=["sentence"])


def test_non_utf8_file(tmp_path):
    (tmp_path / "l.txt").write_bytes("Caf\xe9 au lait, s'il vous pla\xeet.\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8.*iconv"):
        read_input_file(tmp_path / "l.txt")


def test_glue_classic_layout(tmp_path):
    root = tmp_path / "glue_data"
    (root / "SST-2").mkdir(parents=True)
    (root / "SST-2" / "dev.tsv").write_text("sentence\tlabel\na fine film \t1\nbad\t0\n", encoding="utf-8")
    (root / "CoLA").mkdir()
    (root / "CoLA" / "dev.tsv").write_text("gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n")
    (root / "MNLI").mkdir()
    (root / "MNLI" / "dev_matched.tsv").write_text(
        "index\tsentence1\tsentence2\tgold_label\n0\tA man sleeps.\tA person rests.\tentailment\n"
    )
    sst = load_glue("SST-2", "validation", root)
    assert [(e.text_a.strip(), e.label) for e in sst] == [("a fine film", 1), ("bad", 0)]
    cola = load_glue("cola", "dev", root)
    assert cola[1].text_a == "Cat the sat." and cola[1].label == 0
    mnli = load_glue("mnli", "validation", root)
    assert mnli[0].text_b == "A person rests." and mnli[0].label == 0
    with pytest.raises(InputError, match="classic layout"):
        load_glue("rte", "validation", root)
    with pytest.raises(InputError, match="unknown GLUE task"):
        load_glue("squad", "validation", root)


def test_load_inputs_limit_and_single_source(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("a b c\nd e f\ng h i\n", encoding="utf-8")
    ex, desc = load_inputs(input_file=f, limit=2)
    assert len(ex) == 2 and desc["source"] == "file" and len(desc["sha256"]) == 64
    with pytest.raises(InputError, match="one input source"):
        load_inputs(input_file=f, glue_task="sst2")


def test_a_tsv_row_opening_with_a_quote_stays_one_example(tmp_path):
    """TSV fields are literal, as in GLUE's files: a text that starts with a double quote must not open a quoted
    field that swallows the rows after it (each row checked against a split on tabs, written here)."""
    rows = ['"a gripping film\t1', 'it was dull .\t0', 'what "fun" it was\t1', 'the end .\t0']
    f = tmp_path / "dev.tsv"
    f.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ex = read_input_file(f, label_column="label")
    assert [(e.example_id, e.text_a, e.label) for e in ex] == [
        (str(i), row.split("\t")[0], row.split("\t")[1]) for i, row in enumerate(rows)]


def test_a_quoted_csv_field_keeps_its_line_break(tmp_path):
    f = tmp_path / "reviews.csv"
    f.write_text('id,text\nr1,"Great screen\nbattery lasts"\nr2,"say ""hi"""\n', encoding="utf-8")
    ex = read_input_file(f, id_column="id")
    assert [(e.example_id, e.text_a) for e in ex] == [("r1", "Great screen\nbattery lasts"), ("r2", 'say "hi"')]


@pytest.mark.parametrize("sep", ["\f", "\v", "\x1c", "\x85", "\u2028", "\u2029"])
def test_only_line_feeds_end_a_line(tmp_path, sep):
    """str.splitlines() also splits on form feeds, vertical tabs, U+2028...: one line must stay one example, and ids
    stay the 0-based line numbers."""
    f = tmp_path / "t.txt"
    f.write_bytes(f"page one{sep}still line one\r\nline two\n".encode())
    ex = read_input_file(f)
    assert [(e.example_id, e.text_a) for e in ex] == [("0", f"page one{sep}still line one"), ("1", "line two")]
    j = tmp_path / "t.jsonl"
    j.write_text(json.dumps({"text": f"a{sep}b"}, ensure_ascii=False) + "\n" + json.dumps({"text": "c"}) + "\n",
                 encoding="utf-8")
    assert [e.text_a for e in read_input_file(j)] == [f"a{sep}b", "c"]


def test_a_jsonl_text_that_is_not_a_string_is_refused(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"text": ["The", "cat", "sat"]}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a string"):
        read_input_file(f)
    f.write_text(json.dumps({"text": 42}) + "\n", encoding="utf-8")
    assert read_input_file(f)[0].text_a == "42"  # a number is a text as written


def test_example_ids_are_strings_whatever_the_caller_passes():
    from attnpatterns.data.records import TextExample

    assert TextExample(7, "a").example_id == "7"
    assert TextExample.from_dict({"example_id": 3, "text_a": "b"}).example_id == "3"

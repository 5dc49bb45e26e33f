"""Bad inputs to ``attnpatterns annotate``: a mistyped corpus, a binary or conflicting labels file (issue 12)."""

from __future__ import annotations

import pytest

from attnpatterns.annotation.corpus import CorpusError, make_map_id, read_labels, require_corpus
from attnpatterns.annotation.sheets import import_labels
from tests.helpers import invoke


def first_error(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("Error:"))


def _tsv(path, rows):
    path.write_text("sheet_id\tcell\tmap_id\tlabel\n" + "".join(f"s\t{i}\t{m}\t{lab}\n" for i, (m, lab) in
                                                                  enumerate(rows, start=1)))
    return path


@pytest.mark.parametrize("command", [
    ["agreement"], ["summary"], ["columns"], ["export-sheets", "-o", "{tmp}/sheets"],
    ["import-labels", "{tmp}/labels.tsv", "-a", "me", "--method", "m"],
])
def test_reading_commands_refuse_a_missing_corpus_and_create_nothing(tmp_path, command):
    _tsv(tmp_path / "labels.tsv", [("x", "v")])
    typo = tmp_path / "corpsu"
    args = ["annotate", *(a.format(tmp=tmp_path) for a in command), "--corpus", typo]
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert f"no annotation corpus at {typo}: the folder does not exist" in first_error(r.output)
    assert not typo.exists() and not (tmp_path / "sheets").exists()


def test_a_file_or_a_folder_without_maps_is_not_a_corpus(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CorpusError, match="is a file, not an annotation corpus folder"):
        require_corpus(tmp_path / "file.txt")
    with pytest.raises(CorpusError, match="has no maps.jsonl"):
        require_corpus(tmp_path)
    r = invoke("annotate", "summary", "--corpus", tmp_path)
    assert r.exit_code == 2 and "is not an annotation corpus" in first_error(r.output)


def test_binary_labels_tsv_names_file_and_format(corpus, tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_bytes(b"\xe6\x8f\x00\x01garbage")
    r = invoke("annotate", "import-labels", tsv, "-a", "me", "--method", "m", "--corpus", corpus)
    assert r.exit_code == 2, r.output
    line = first_error(r.output)
    assert f"{tsv} is a binary file" in line and "sheet_id cell map_id label" in line and "codec" not in line
    tsv.write_bytes(b"map_id\tlabel\ncaf\xe9\tv\n")
    r = invoke("annotate", "import-labels", tsv, "-a", "me", "--method", "m", "--corpus", corpus)
    assert r.exit_code == 2 and f"{tsv} is not UTF-8 text" in first_error(r.output)


def test_import_labels_of_a_folder_or_missing_file(corpus, tmp_path):
    r = invoke("annotate", "import-labels", tmp_path, "-a", "me", "--method", "m", "--corpus", corpus)
    assert r.exit_code == 2 and "is a folder; pass the filled-in labels.tsv" in first_error(r.output)
    r = invoke("annotate", "import-labels", tmp_path / "nope.tsv", "-a", "me", "--method", "m", "--corpus", corpus)
    assert r.exit_code == 2 and "nope.tsv does not exist" in first_error(r.output)


def test_conflicting_duplicate_ids_are_refused_identical_ones_collapsed(corpus, tmp_path):
    a, b = make_map_id("minilm", 0, 0, "s000", "raw"), make_map_id("minilm", 0, 1, "s001", "raw")
    tsv = _tsv(tmp_path / "conflict.tsv", [(a, "v"), (b, "d"), (a, "block")])
    r = invoke("annotate", "import-labels", tsv, "-a", "me", "--method", "m", "--corpus", corpus)
    assert r.exit_code == 2, r.output
    assert f"conflicting labels for map id(s) {a}" in first_error(r.output)
    assert "line 2: vertical; line 4: block" in r.output
    assert read_labels(corpus) == []

    tsv = _tsv(tmp_path / "same.tsv", [(a, "v"), (b, "d"), (a, "Vertical")])
    r = invoke("annotate", "import-labels", tsv, "-a", "me", "--method", "m", "--corpus", corpus)
    assert r.exit_code == 0, r.output
    assert "imported 2 label(s)" in r.output and f"imported once: {a}" in r.output
    assert [row.map_id for row in read_labels(corpus)] == [a, b]


def test_import_labels_library_refuses_missing_corpus(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        import_labels(tmp_path / "nope", _tsv(tmp_path / "l.tsv", [("x", "v")]), "me", "m")
    assert not (tmp_path / "nope").exists()


def test_import_npy_of_a_missing_folder(tmp_path):
    r = invoke("annotate", "import-npy", tmp_path / "nope", "--corpus", tmp_path / "c")
    assert r.exit_code == 2 and "nope does not exist; pass a folder of square" in first_error(r.output)


def test_columns_unknown_id_fails_before_printing(corpus):
    r = invoke("annotate", "columns", "no-such-map", "--corpus", corpus)
    assert r.exit_code == 2 and r.output.splitlines()[0].startswith("Error: not in the corpus")

"""The sheet workflow end to end through the CLI: build, export, fill in, import, second pass, agreement."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from attnpatterns.annotation.corpus import LabelRow, append_labels, effective_labels, read_labels, read_map_index
from attnpatterns.annotation.sheets import parse_shard, select_for_export
from attnpatterns.cli.app import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def _fill(tsv, labels):
    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row, lab in zip(rows, labels):
        row["label"] = lab
    with open(tsv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rows


@pytest.fixture
def built(tiny_runs, tmp_path):
    corpus = tmp_path / "corpus"
    r = invoke("annotate", "build-corpus", *tiny_runs, "--per-kind", "10", "--seed", "1", "--corpus", corpus)
    assert r.exit_code == 0, r.output
    assert "added 20 maps" in r.output
    return corpus


def test_export_fill_import_round_trip(built, tmp_path):
    out = tmp_path / "sheets"
    r = invoke("annotate", "export-sheets", "--kind", "raw", "--unlabelled", "--per-sheet", "4", "-o", out,
               "--corpus", built)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.glob("*.png"))
    assert [re.sub(r"-[0-9a-f]{4}-", "-", n) for n in names] == [f"raw-first-00{i}.png" for i in (1, 2, 3)]
    from PIL import Image

    sizes = {Image.open(out / n).size for n in names}
    assert len(sizes) == 1  # the last, partly filled sheet has the same layout as the others
    with open(out / "labels.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
    assert header == ["sheet_id", "cell", "map_id", "label"]
    rows = _fill(out / "labels.tsv", ["v", "Diagonal", "vertical + diagonal", "B", "h", "", "vd", "d", "v", "v"])
    assert re.fullmatch(r"raw-first-[0-9a-f]{4}-001", rows[0]["sheet_id"]) and rows[4]["cell"] == "1"
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "alice", "--method",
               "agent viewed sheets", "--pass", "first", "--corpus", built)
    assert r.exit_code == 0, r.output
    assert "imported 9 label(s)" in r.output and "1 empty" in r.output
    labels = effective_labels(built)
    assert labels[rows[2]["map_id"]] == "vertical+diagonal" and rows[5]["map_id"] not in labels
    assert {r.method for r in read_labels(built)} == {"agent viewed sheets"}
    # exporting again only shows what is left, and the same folder is never overwritten
    r = invoke("annotate", "export-sheets", "--kind", "raw", "-o", tmp_path / "again", "--corpus", built)
    assert "1 maps" in r.output
    r = invoke("annotate", "export-sheets", "--kind", "raw", "-o", out, "--corpus", built)
    assert r.exit_code != 0 and "already exists" in r.output


def test_bad_labels_are_refused_with_the_valid_ones(built, tmp_path):
    out = tmp_path / "sheets"
    invoke("annotate", "export-sheets", "--kind", "normed", "-o", out, "--corpus", built)
    _fill(out / "labels.tsv", ["v", "stripes", "d", "zigzag"])
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "a", "--method", "m",
               "--corpus", built)
    assert r.exit_code != 0
    assert "line 3" in r.output and "line 5" in r.output
    assert "vertical, diagonal, vertical+diagonal, block, heterogeneous" in r.output
    assert read_labels(built) == []


def test_second_pass_agreement_and_adjudication(built, tmp_path):
    ids = [m["map_id"] for m in read_map_index(built)]
    append_labels(built, [{"map_id": m, "label": "vdbhv"[i % 5], "annotator": "alice", "method": "m",
                           "pass": "first"} for i, m in enumerate(ids)])
    # the first annotator gets nothing to re-label; another gets 20% per kind, without the first labels
    r = invoke("annotate", "export-sheets", "--pass", "second", "--annotator", "alice", "-o", tmp_path / "x",
               "--corpus", built)
    assert "nothing to export" in r.output
    second = tmp_path / "second"
    r = invoke("annotate", "export-sheets", "--pass", "second", "--annotator", "bob", "-o", second,
               "--corpus", built, "--seed", "7")
    assert r.exit_code == 0, r.output
    text = (second / "labels.tsv").read_text()
    assert text.splitlines()[0].split("\t") == ["sheet_id", "cell", "map_id", "label"]
    assert not any(t in text for t in ("vertical", "diagonal", "block", "heterogeneous"))
    rows = _fill(second / "labels.tsv", ["h", "h", "h", "h"])
    assert len(rows) == 4 and {r["map_id"].rsplit("-", 1)[1] for r in rows} == {"raw", "normed"}
    r = invoke("annotate", "import-labels", second / "labels.tsv", "-a", "alice", "--method", "m",
               "--pass", "second", "--corpus", built)
    assert r.exit_code != 0 and "another annotator" in r.output
    before = effective_labels(built)
    r = invoke("annotate", "import-labels", second / "labels.tsv", "-a", "bob", "--method", "m",
               "--pass", "second", "--corpus", built)
    assert r.exit_code == 0, r.output
    assert effective_labels(built) == before
    r = invoke("annotate", "agreement", "--corpus", built)
    assert r.exit_code == 0, r.output
    report = json.loads((built / "agreement.json").read_text())
    assert report["all"]["n"] == 4 and report["raw"]["n"] == 2
    n_open = report["all"]["open_disagreements"]
    assert n_open == sum(before[r["map_id"]] != "heterogeneous" for r in rows)
    # adjudication: the sheet shows both answers, and the adjudicated label becomes the effective one
    adj = tmp_path / "adj"
    r = invoke("annotate", "export-sheets", "--pass", "adjudicated", "-o", adj, "--corpus", built)
    if n_open:
        header = (adj / "labels.tsv").read_text().splitlines()[0].split("\t")
        assert header == ["sheet_id", "cell", "map_id", "first_label", "second_label", "label"]
        rows = _fill(adj / "labels.tsv", ["h"] * n_open)
        assert invoke("annotate", "import-labels", adj / "labels.tsv", "-a", "carol", "--method", "m",
                      "--pass", "adjudicated", "--corpus", built).exit_code == 0
        assert all(effective_labels(built)[r["map_id"]] == "heterogeneous" for r in rows)
    r = invoke("annotate", "summary", "--corpus", built)
    assert r.exit_code == 0 and "| raw |" in r.output and "open disagreements: 0" in r.output
    assert len(ids) == 20


def test_shards_partition_the_work(built):
    got = [select_for_export(built, "a", shard=parse_shard(f"{k}/3")) for k in (1, 2, 3)]
    assert all(got) and sorted(sum(got, [])) == sorted(m["map_id"] for m in read_map_index(built))
    with pytest.raises(ValueError, match="K/N"):
        parse_shard("2")


def test_option_errors(built, tmp_path):
    r = invoke("annotate", "export-sheets", "--pass", "second", "-o", tmp_path / "o", "--corpus", built)
    assert r.exit_code != 0 and "--annotator" in r.output
    r = invoke("annotate", "export-sheets", "--kind", "weird", "-o", tmp_path / "o", "--corpus", built)
    assert r.exit_code != 0
    r = invoke("annotate", "build-corpus", tmp_path, "--corpus", built)
    assert r.exit_code != 0 and "not an extraction run" in r.output


def test_build_corpus_favour(tiny_runs, tmp_path):
    corpus = tmp_path / "c"
    r = invoke("annotate", "build-corpus", *tiny_runs, "-n", "8", "--kind", "raw", "--favour", "raw:Block=2",
               "--corpus", corpus)
    assert r.exit_code == 0, r.output
    log = json.loads((corpus / "corpus_log.jsonl").read_text().splitlines()[0])
    assert log["favour"] == {"raw:block": 2} and sum(bool(a.get("favoured")) for a in log["added"]) == 2
    for bad in ("raw:block", "raw:diagonal=3", "weird:block=2"):
        r = invoke("annotate", "build-corpus", *tiny_runs, "--favour", bad, "--corpus", corpus)
        assert r.exit_code != 0 and "KIND" in r.output, r.output


def test_guideline_figures(tiny_runs, tmp_path):
    spec = {"figures": {"vertical+diagonal": {"ncols": 2, "maps": [
        {"example_id": "s1", "layer": 0, "head": 1, "kind": "raw"},
        {"example_id": "p2", "layer": 1, "head": 3, "kind": "normed"},
    ]}}}
    (tmp_path / "examples.json").write_text(json.dumps(spec))
    # maps of two runs cannot share a figure, so the pair example fails clearly on the singles run
    r = invoke("annotate", "guideline-figures", tiny_runs[0], "--spec", tmp_path / "examples.json", "-o", tmp_path)
    assert r.exit_code != 0 and "p2" in r.output
    spec["figures"]["vertical+diagonal"]["maps"][1]["example_id"] = "s2"
    (tmp_path / "examples.json").write_text(json.dumps(spec))
    r = invoke("annotate", "guideline-figures", tiny_runs[0], "--spec", tmp_path / "examples.json", "-o", tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "vertical-diagonal.png").stat().st_size > 1000
    assert (tmp_path / "colour-scale.png").stat().st_size > 1000  # the named colours the rules use
    assert "wrote 2 figure(s)" in r.output


def test_blind_export_hides_map_ids_and_imports_to_the_right_maps(built, tmp_path):
    out = tmp_path / "blind"
    r = invoke("annotate", "export-sheets", "--kind", "raw", "--unlabelled", "--blind", "-o", out, "--corpus", built)
    assert r.exit_code == 0, r.output
    known = {m["map_id"] for m in read_map_index(built)}
    rows = _fill(out / "labels.tsv", ["b", "d", "h"])
    tokens = [row["map_id"] for row in rows]
    assert all(re.fullmatch(r"b-[0-9a-f]{10}", t) for t in tokens) and not set(tokens) & known
    # nothing in the folder that goes to the annotator names a map: the key stays in the corpus
    for path in out.iterdir():
        if path.suffix in (".json", ".tsv"):
            assert not known & set(re.findall(r"[\w.+-]+", path.read_text())), path.name
    keys = [json.loads(line) for line in (built / "blind_keys.jsonl").read_text().splitlines()]
    assert len(keys) == 1 and set(keys[0]["blind_ids"]) == set(tokens)
    table = keys[0]["blind_ids"]
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "carol", "--method", "blind sheets",
               "--corpus", built)
    assert r.exit_code == 0, r.output
    labels = effective_labels(built)
    assert [labels[table[t]] for t in tokens[:3]] == ["block", "diagonal", "heterogeneous"]
    # a second blind export appends its own key; the first stays
    r = invoke("annotate", "export-sheets", "--kind", "raw", "--pass", "first", "--blind", "-o", tmp_path / "b2",
               "--annotator", "dave", "--corpus", built)
    assert r.exit_code == 0, r.output
    lines = (built / "blind_keys.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0]) == keys[0]
    (out / "export.json").write_text("{broken")
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "carol", "--method", "again",
               "--corpus", built)
    assert r.exit_code != 0 and "re-export" in r.output
    (out / "export.json").unlink()
    other = tmp_path / "other-corpus"
    shutil.copytree(built, other)
    (other / "blind_keys.jsonl").unlink()
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "erin", "--method", "elsewhere",
               "--corpus", other)
    assert r.exit_code != 0 and "in no blind key" in r.output and "--corpus" in r.output


def test_blind_exports_from_before_the_corpus_kept_keys_still_import(built, tmp_path):
    out = tmp_path / "old-blind"
    r = invoke("annotate", "export-sheets", "--kind", "raw", "--unlabelled", "--blind", "-o", out, "--corpus", built)
    assert r.exit_code == 0, r.output
    rows = _fill(out / "labels.tsv", ["v"])
    # what an older export looked like: the table in its export.json, none in the corpus
    key = json.loads((built / "blind_keys.jsonl").read_text())["blind_ids"]
    manifest = json.loads((out / "export.json").read_text())
    (out / "export.json").write_text(json.dumps({**manifest, "blind_ids": key}))
    (built / "blind_keys.jsonl").unlink()
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "carol", "--method", "old sheets",
               "--corpus", built)
    assert r.exit_code == 0, r.output
    assert effective_labels(built)[key[rows[0]["map_id"]]] == "vertical"


def test_import_keeps_a_per_row_note_column(built, tmp_path):
    out = tmp_path / "sheets"
    r = invoke("annotate", "export-sheets", "--kind", "raw", "--unlabelled", "--limit", "3", "-o", out, "--corpus",
               built)
    assert r.exit_code == 0, r.output
    rows = _fill(out / "labels.tsv", ["v", "d", "b"])
    with open(out / "labels.tsv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], "note"], delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows([{**row, "note": n} for row, n in zip(rows, ["faint column,\n half the rows", "", ""])])
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "dana", "--method", "sheets",
               "--note", "round 4", "--corpus", built)
    assert r.exit_code == 0, r.output
    notes = {row.map_id: row.note for row in read_labels(built)}
    assert notes[rows[0]["map_id"]] == "round 4; faint column, half the rows"
    assert notes[rows[1]["map_id"]] == "round 4"


def test_build_corpus_uncertain_uses_the_given_checkpoint(tiny_runs, tmp_path):
    import torch

    from attnpatterns.patterns import PatternClassifier
    from attnpatterns.patterns.checkpoint import save_checkpoint
    from attnpatterns.patterns.model import ModelConfig

    torch.manual_seed(0)  # an untrained CNN without trees: any probabilities will do for picking maps
    save_checkpoint(PatternClassifier.new("raw", model=ModelConfig(forest_weight=0.0)), tmp_path / "ckpt")
    corpus = tmp_path / "c"
    r = invoke("annotate", "build-corpus", *tiny_runs, "-n", "8", "--kind", "raw", "--uncertain", "raw:ANY=2",
               "--checkpoint", tmp_path / "ckpt", "--corpus", corpus)
    assert r.exit_code == 0, r.output
    log = json.loads((corpus / "corpus_log.jsonl").read_text().splitlines()[0])
    assert log["uncertain"] == {"raw:any": 2} and sum(bool(a.get("uncertain")) for a in log["added"]) == 4
    assert log["uncertainty_classifiers"]["raw"]["path"].endswith("ckpt")
    r = invoke("annotate", "build-corpus", *tiny_runs, "--uncertain", "raw:stripes=2", "--corpus", corpus)
    assert r.exit_code != 0 and "--uncertain" in r.output, r.output
    r = invoke("annotate", "build-corpus", *tiny_runs, "--uncertain", "raw:any=2", "--checkpoint", tmp_path / "none",
               "--corpus", corpus)
    assert r.exit_code != 0 and "does not exist" in r.output, r.output


def test_export_map_ids_re_exports_labelled_maps_for_a_re_look(built, tmp_path):
    index = [m["map_id"] for m in read_map_index(built) if m["kind"] == "raw"]
    append_labels(built, [LabelRow(
        map_id=m, label="vertical", annotator="alice", method="m", pass_="first") for m in index])
    chosen = [index[5], index[1], index[8]]  # labelled maps: the work queue would offer none of them
    (tmp_path / "ids.txt").write_text("\n".join(chosen) + "\n")
    r = invoke("annotate", "export-sheets", "--kind", "raw", "--map-ids", tmp_path / "ids.txt", "--pass", "first",
               "--blind", "-o", tmp_path / "relook", "--corpus", built)
    assert r.exit_code == 0, r.output
    with open(tmp_path / "relook" / "labels.tsv") as f:
        tokens = [row["map_id"] for row in csv.DictReader(f, delimiter="\t")]
    assert len(tokens) == 3 and all(t.startswith("b-") for t in tokens)
    # exactly the chosen maps, in corpus order, and a relabel imports over the earlier label
    assert select_for_export(built, "", "first", "raw", only=chosen) == [index[1], index[5], index[8]]
    assert select_for_export(built, "", "first", "normed", only=chosen) == []
    _fill(tmp_path / "relook" / "labels.tsv", ["h", "h", "h"])
    r = invoke("annotate", "import-labels", tmp_path / "relook" / "labels.tsv", "--annotator", "bob", "--method",
               "re-look", "--pass", "first", "--corpus", built)
    assert r.exit_code == 0 and "3 relabel(s)" in r.output, r.output
    labels = effective_labels(built)
    assert [labels[m] for m in chosen] == ["heterogeneous"] * 3 and labels[index[0]] == "vertical"
    (tmp_path / "bad.txt").write_text("no-such-map\n")
    r = invoke("annotate", "export-sheets", "--map-ids", tmp_path / "bad.txt", "-o", tmp_path / "x", "--corpus", built)
    assert r.exit_code != 0 and "no-such-map" in r.output and "not in the corpus" in r.output
    r = invoke("annotate", "export-sheets", "--map-ids", tmp_path / "ids.txt", "--unlabelled", "-o", tmp_path / "y",
               "--corpus", built)
    assert r.exit_code != 0 and "--unlabelled" in r.output


def test_a_label_one_column_to_the_right_is_refused_not_skipped_as_empty(built, tmp_path):
    """An extra tab before the label puts it after the last column: that row is the annotator's work, so the import
    refuses the sheet naming the line, instead of counting the row as empty and dropping the label."""
    out = tmp_path / "sheets"
    assert invoke("annotate", "export-sheets", "--kind", "raw", "--unlabelled", "--limit", "3", "-o", out,
                  "--corpus", built).exit_code == 0
    rows = _fill(out / "labels.tsv", ["v", "", "b"])
    lines = (out / "labels.tsv").read_text().splitlines()
    shifted = lines[2].split("\t")
    lines[2] = "\t".join(shifted[:3] + ["", "diagonal"])  # map_id, then an empty label, then the label
    (out / "labels.tsv").write_text("\n".join(lines) + "\n")
    before = (built / "labels.csv").read_bytes() if (built / "labels.csv").exists() else b""
    r = invoke("annotate", "import-labels", out / "labels.tsv", "--annotator", "dana", "--method", "sheets",
               "--corpus", built)
    assert r.exit_code != 0 and "line 3" in r.output and "'diagonal'" in r.output
    assert ((built / "labels.csv").read_bytes() if (built / "labels.csv").exists() else b"") == before
    assert rows[1]["map_id"] in lines[2]


def test_a_blind_export_killed_before_its_key_is_saved_leaves_no_table_to_fill_in(built, tmp_path, monkeypatch):
    """The key (blind id -> map id) is saved with the corpus before labels.tsv is written: a table that exists can
    always be imported."""
    import attnpatterns.annotation.sheets as sheets

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sheets, "_save_blind_key", killed)
    with pytest.raises(KeyboardInterrupt):
        sheets.export_sheets(built, tmp_path / "blind", [m["map_id"] for m in read_map_index(built)][:3], blind=True)
    assert not (tmp_path / "blind" / "labels.tsv").exists()


def test_agreement_never_replaces_a_file_it_did_not_write(built, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "agreement.json").write_text('{"my": "notes"}')
    r = invoke("annotate", "agreement", "-o", home, "--corpus", built)
    assert r.exit_code != 0 and "not an agreement file" in r.output
    assert (home / "agreement.json").read_text() == '{"my": "notes"}'
    r = invoke("annotate", "agreement", "-o", home / "agreement.json", "--corpus", built)
    assert r.exit_code != 0 and "is a file" in r.output
    out = tmp_path / "out"
    assert invoke("annotate", "agreement", "-o", out, "--corpus", built).exit_code == 0
    assert invoke("annotate", "agreement", "-o", out, "--corpus", built).exit_code == 0  # its own file: replaced


def test_a_damaged_corpus_is_named_not_used_in_part(built, tmp_path):
    """Labelled maps whose index line or array is gone, a truncated tensor file, a garbled index line: each an error
    naming the damage (evaluate and train used to score or fit the maps that were left)."""
    from attnpatterns.annotation.corpus import CorpusError, load_corpus

    ids = [m["map_id"] for m in read_map_index(built)][:6]
    append_labels(built, [LabelRow(map_id=m, label="vertical", annotator="a", method="m", pass_="first") for m in ids])
    assert len(load_corpus(built)) == 6
    damaged = tmp_path / "no-lines"
    shutil.copytree(built, damaged)
    lines = (damaged / "maps.jsonl").read_text().splitlines(keepends=True)
    (damaged / "maps.jsonl").write_text("".join(line for line in lines if ids[0] not in line))
    with pytest.raises(CorpusError, match="1 have no line in maps.jsonl"):
        load_corpus(damaged)
    r = invoke("evaluate", "default", damaged, "--kind", "raw")
    assert r.exit_code != 0 and "damaged" in r.output
    truncated = tmp_path / "truncated"
    shutil.copytree(built, truncated)
    data = (truncated / "maps.safetensors").read_bytes()
    (truncated / "maps.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match="maps.safetensors cannot be read"):
        load_corpus(truncated)
    garbled = tmp_path / "garbled"
    shutil.copytree(built, garbled)
    (garbled / "maps.jsonl").write_text(lines[0] + '{"map_id": \n' + "".join(lines[1:]))
    with pytest.raises(CorpusError, match="maps.jsonl:2 is damaged"):
        load_corpus(garbled)

"""Importers: the original authors' two layouts (.npy + labels.txt, .npy + TSV) and the project corpus."""

from __future__ import annotations

import numpy as np
import pytest

from attnpatterns.annotation.corpus import add_maps, append_labels
from attnpatterns.patterns.io import (
    DataError,
    detect_format,
    load_labeled,
    read_npy_folder,
    read_npy_labels,
    read_npy_tsv,
)
from attnpatterns.annotation.labels import LabelError
from attnpatterns.patterns.preprocess import MapError
from tests.annotation.conftest import make_map
from tests.patterns.conftest import save_npy_folder
from tests.patterns.synthetic import synthetic_set

ORIGINAL_NAMES = {
    "vertical": "single_vertical",
    "diagonal": "Diagonal",
    "vertical+diagonal": "Vertical + Diagonal",
    "block": "block",
    "heterogeneous": "other",
}


@pytest.fixture
def small():
    return synthetic_set(n_per_type=3, seed=7, min_tokens=5, max_tokens=12)


def test_npy_labels_folder(tmp_path, small):
    folder = save_npy_folder(tmp_path / "raw", small, padded_to=16)
    lines = ["# labels of the raw maps"]
    for t, original in ORIGINAL_NAMES.items():
        names = [n for n, lab in zip(small.names, small.labels) if lab == t]
        names[0] += ".npy"  # both spellings of a name are accepted
        lines.append(f"{original} = {', '.join(names)}")
    (folder / "labels.txt").write_text("\n".join(lines) + "\n")

    data = load_labeled(folder, kind="raw")
    assert detect_format(folder) == "npy-labels"
    assert sorted(data.names) == sorted(small.names)
    by_name = dict(zip(data.names, data.labels))
    assert all(by_name[n] == lab for n, lab in zip(small.names, small.labels))
    assert data.kind == "raw" and all(a.shape == (16, 16) for a in data.arrays)
    assert data.groups == data.names  # no group pattern: each map alone
    assert read_npy_labels(folder / "labels.txt").names == data.names


def test_npy_tsv_folder_with_and_without_header(tmp_path, small):
    folder = save_npy_folder(tmp_path / "normed", small)
    rows = [f"{n}\t{ORIGINAL_NAMES[lab]}" for n, lab in zip(small.names, small.labels)]
    (folder / "labels.tsv").write_text("name\tlabel\n" + "\n".join(rows) + "\n")
    data = load_labeled(folder, kind="normed")
    assert detect_format(folder) == "npy-tsv"
    assert dict(zip(data.names, data.labels)) == dict(zip(small.names, small.labels))

    (folder / "labels.tsv").write_text("\n".join(rows) + "\n")
    again = read_npy_tsv(folder / "labels.tsv", kind="normed", group_pattern=r"^(.+)-\d+$")
    assert again.names == data.names
    assert set(again.groups) == set(small.labels)  # names are "<type>-<index>"


def test_group_pattern_groups_by_name(tmp_path, small):
    folder = save_npy_folder(tmp_path / "m", small)
    (folder / "labels.txt").write_text(
        "\n".join(f"{lab} = {n}" for n, lab in zip(small.names, small.labels)) + "\n"
    )
    data = read_npy_labels(folder, group_pattern=r"-(\d)\d\d$")
    assert set(data.groups) == {"0"}


def test_unknown_label_names_are_refused(tmp_path, small):
    folder = save_npy_folder(tmp_path / "m", small)
    (folder / "labels.txt").write_text(f"stripes = {small.names[0]}\nvertical = {small.names[1]}\n")
    with pytest.raises(LabelError, match="stripes"):
        load_labeled(folder)


def test_missing_maps_and_conflicting_labels(tmp_path, small):
    folder = save_npy_folder(tmp_path / "m", small)
    (folder / "labels.txt").write_text("vertical = nothere, alsomissing\n")
    with pytest.raises(DataError, match="no .npy file"):
        load_labeled(folder)
    (folder / "labels.txt").write_text(f"vertical = {small.names[0]}\nblock = {small.names[0]}\n")
    with pytest.raises(DataError, match="two different labels"):
        load_labeled(folder)
    (folder / "labels.txt").write_text(f"vertical {small.names[0]}\n")
    with pytest.raises(DataError, match="labels.txt:1"):
        load_labeled(folder)


def test_bad_map_files(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    np.save(folder / "rect.npy", np.ones((4, 5), dtype=np.float32))
    (folder / "labels.txt").write_text("vertical = rect\n")
    with pytest.raises(MapError, match="not square"):
        load_labeled(folder)
    with open(folder / "obj.npy", "wb") as handle:
        np.save(handle, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "labels.txt").write_text("vertical = obj\n")
    with pytest.raises(DataError, match="pickled"):
        load_labeled(folder)


def test_format_detection_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        detect_format(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DataError, match="unknown format"):
        load_labeled(tmp_path / "empty", format="csv")


def test_read_npy_folder(tmp_path, small):
    folder = save_npy_folder(tmp_path / "m", small)
    names, arrays = read_npy_folder(folder)
    assert names == sorted(small.names) and len(arrays) == len(small)
    with pytest.raises(DataError, match="no .npy"):
        read_npy_folder(tmp_path)


def test_project_corpus(tmp_path):
    root = tmp_path / "corpus"
    maps = [
        make_map(layer=layer, head=head, kind=kind, text_id=f"t{head}", pattern=pattern, seed=layer + head,
                 **({"text_kind": "pair", "segment_ids": [0] * 5 + [1] * 3} if head else {}))
        for kind in ("raw", "normed")
        for layer, pattern in enumerate(("vertical", "diagonal", "block"))
        for head in range(2)
    ]
    add_maps(root, maps)
    labels = ["vertical", "vertical", "diagonal", "diagonal", "block", "block"] * 2
    rows = [{"map_id": m.map_id, "label": lab, "annotator": "a", "method": "looked", "pass": "first"}
            for m, lab in zip(maps, labels)]
    append_labels(root, rows)
    data = load_labeled(root, kind="raw")
    assert detect_format(root) == "corpus"
    assert len(data) == 6 and data.kind == "raw"
    assert data.class_counts() == {"vertical": 2, "diagonal": 2, "vertical+diagonal": 0, "block": 2,
                                   "heterogeneous": 0}
    assert set(data.groups) == {"t0", "t1"}  # the text id, whatever the model
    by_id = {m.map_id: m for m in maps}
    assert data.segments == [by_id[n].segment_ids for n in data.names]  # each map's own ids, in the data's order
    part = data.subset([4, 1])
    assert part.segments == [data.segments[4], data.segments[1]]
    with pytest.raises(DataError, match="mixes kinds"):
        load_labeled(root)

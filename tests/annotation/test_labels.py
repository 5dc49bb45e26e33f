"""The label-name table: original spellings, overrides, and clear errors for unknown names."""

from __future__ import annotations

import json

import pytest

from attnpatterns.constants import PATTERN_TYPES
from attnpatterns.annotation.labels import (
    DEFAULT_LABEL_MAP,
    DEFAULT_LABEL_TABLE,
    LabelError,
    LabelMap,
    canonical_name,
    read_label_map_file,
)


@pytest.mark.parametrize(
    "name",
    ["Vertical + Diagonal", "vertical+diagonal", "VERTICAL  +diagonal", "vertical_+_diagonal", " Vertical +Diagonal ",
     "vertical & diagonal", "Diagonal + Vertical", "vertical and diagonal", "mix", "Mix", "MIXED"],
)
def test_spellings_of_vertical_plus_diagonal(name):
    assert DEFAULT_LABEL_MAP(name) == "vertical+diagonal"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("single_vertical", "vertical"),
        ("double_vertical", "vertical"),
        ("multiple_vertical", "vertical"),
        ("Single Vertical", "vertical"),
        ("multiple-vertical", "vertical"),
        ("Vertical", "vertical"),
        ("diagonal", "diagonal"),
        ("Block", "block"),
        ("blocks", "block"),
        ("other", "heterogeneous"),
        ("Other", "heterogeneous"),
        ("Heterogeneous", "heterogeneous"),
        ("heterogenous", "heterogeneous"),
    ],
)
def test_original_names_map_to_the_five_types(name, expected):
    assert DEFAULT_LABEL_MAP(name) == expected


def test_every_type_maps_to_itself_and_table_targets_are_types():
    for t in PATTERN_TYPES:
        assert DEFAULT_LABEL_MAP(t) == t
    assert set(DEFAULT_LABEL_TABLE.values()) == set(PATTERN_TYPES)


def test_canonical_name():
    assert canonical_name("  Vertical  +  Diagonal ") == "vertical+diagonal"
    assert canonical_name("single_vertical") == "single vertical"


def test_unknown_names_are_all_reported_with_the_fix():
    with pytest.raises(LabelError) as err:
        DEFAULT_LABEL_MAP.map_all(["vertical", "stripes", "noise", "stripes"])
    message = str(err.value)
    assert "'noise'" in message and "'stripes'" in message
    assert "--label-map" in message


def test_overrides_extend_or_replace_the_table():
    extended = DEFAULT_LABEL_MAP.with_overrides({"Stripes": "vertical", "mix": "heterogeneous"})
    assert extended("stripes") == "vertical"
    assert extended("mix") == "heterogeneous"
    assert extended("block") == "block"
    replaced = LabelMap({"a": "block"})
    assert replaced("A") == "block"
    with pytest.raises(LabelError):
        replaced("block")


def test_override_to_a_non_type_is_refused():
    with pytest.raises(LabelError, match="not a pattern type"):
        DEFAULT_LABEL_MAP.with_overrides({"stripes": "verticalish"})


def test_label_map_files(tmp_path):
    text = tmp_path / "map.txt"
    text.write_text("# my names\nstripes = vertical\nchecker board = Heterogeneous\n\n")
    m = read_label_map_file(text)
    assert m("Stripes") == "vertical" and m("checker_board") == "heterogeneous" and m("mix") == "vertical+diagonal"

    js = tmp_path / "map.json"
    js.write_text(json.dumps({"__replace__": True, "x": "block"}))
    m = read_label_map_file(js)
    assert m("x") == "block"
    with pytest.raises(LabelError):
        m("vertical")

    bad = tmp_path / "bad.txt"
    bad.write_text("stripes vertical\n")
    with pytest.raises(LabelError, match="bad.txt:1"):
        read_label_map_file(bad)
    with pytest.raises(LabelError, match="does not exist"):
        read_label_map_file(tmp_path / "missing.txt")

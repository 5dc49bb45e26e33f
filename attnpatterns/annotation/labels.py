"""Label names: the table that maps the spellings found in annotation files to the five pattern types.

Annotation files written by different people spell the same type differently ("Vertical + Diagonal", "mix",
"single_vertical", "other", ...). :class:`LabelMap` turns any such name into one of
:data:`~attnpatterns.constants.PATTERN_TYPES` through a documented table, :data:`DEFAULT_LABEL_TABLE`, that a user
can extend or replace (``--label-map FILE`` on the command line, see :func:`read_label_map_file`).

Names are compared after :func:`canonical_name`: lower case, underscores/hyphens/runs of whitespace become a single
space, and spaces around ``+`` or ``&`` vanish. So ``"Vertical + Diagonal"``, ``"vertical+diagonal"``,
``"VERTICAL  +diagonal"`` and ``"vertical_+_diagonal"`` are one name. An unknown name is an error that lists the
known spellings; it is never guessed.

Default table (canonical spelling -> type):

=========================================================================  =====================
names                                                                      type
=========================================================================  =====================
vertical, single vertical, double vertical, multiple vertical, verticals    vertical
diagonal, diagonals                                                         diagonal
vertical+diagonal, diagonal+vertical, vertical diagonal, vertical and       vertical+diagonal
diagonal, vertical&diagonal, mix, mixed, vd
block, blocks                                                               block
heterogeneous, heterogenous, other, others                                  heterogeneous
=========================================================================  =====================
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from attnpatterns.constants import PATTERN_TYPES


class LabelError(ValueError):
    """A label name that the table does not know, or a label table that is malformed."""


def canonical_name(name: str) -> str:
    """The spelling used to look a label name up: case, spacing and separators do not matter."""
    text = str(name).strip().lower()
    text = re.sub(r"[_\-\s]+", " ", text)  # snake_case, kebab-case, repeated spaces -> one space
    text = re.sub(r"\s*([+&])\s*", r"\1", text)  # "vertical + diagonal" -> "vertical+diagonal"
    return text.strip()


#: The default table, canonical spelling -> pattern type. Documented in the module docstring.
DEFAULT_LABEL_TABLE: dict[str, str] = {
    # vertical: one or a few bright columns (the original data split them by number of stripes)
    "vertical": "vertical",
    "verticals": "vertical",
    "single vertical": "vertical",
    "double vertical": "vertical",
    "multiple vertical": "vertical",
    # diagonal
    "diagonal": "diagonal",
    "diagonals": "diagonal",
    # vertical+diagonal ("mix" in the original raw-map labels)
    "vertical+diagonal": "vertical+diagonal",
    "diagonal+vertical": "vertical+diagonal",
    "vertical diagonal": "vertical+diagonal",
    "vertical and diagonal": "vertical+diagonal",
    "vertical&diagonal": "vertical+diagonal",
    "mix": "vertical+diagonal",
    "mixed": "vertical+diagonal",
    "vd": "vertical+diagonal",
    # block
    "block": "block",
    "blocks": "block",
    # heterogeneous ("other" in the original labels)
    "heterogeneous": "heterogeneous",
    "heterogenous": "heterogeneous",
    "other": "heterogeneous",
    "others": "heterogeneous",
}


@dataclass(frozen=True)
class LabelMap:
    """Maps label names to pattern types; ``table`` keys are canonical spellings (see :func:`canonical_name`).

    Build a custom one with :meth:`with_overrides` (adds to / overrides the default) or ``LabelMap(table)``
    (replaces it). Every value must be one of :data:`PATTERN_TYPES`.
    """

    table: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABEL_TABLE))

    def __post_init__(self) -> None:
        clean: dict[str, str] = {}
        for name, target in self.table.items():
            target_type = canonical_name(target)
            if target_type not in PATTERN_TYPES:
                raise LabelError(
                    f"label table maps {name!r} to {target!r}, which is not a pattern type; "
                    f"targets must be one of {', '.join(PATTERN_TYPES)}"
                )
            clean[canonical_name(name)] = target_type
        object.__setattr__(self, "table", clean)

    def with_overrides(self, overrides: Mapping[str, str]) -> LabelMap:
        """A new map: this table plus ``overrides`` (which win on conflicts)."""
        return LabelMap({**self.table, **overrides})

    def __call__(self, name: str) -> str:
        """The pattern type of one label name; :class:`LabelError` if unknown."""
        key = canonical_name(name)
        if key not in self.table:
            raise LabelError(self._unknown_message([name]))
        return self.table[key]

    def map_all(self, names: Iterable[str]) -> list[str]:
        """Map many names at once; an error names *every* unknown spelling, not just the first."""
        names = list(names)
        unknown = sorted({n for n in names if canonical_name(n) not in self.table})
        if unknown:
            raise LabelError(self._unknown_message(unknown))
        return [self.table[canonical_name(n)] for n in names]

    def _unknown_message(self, unknown: list[str]) -> str:
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        known = ", ".join(sorted(self.table))
        return (
            f"unknown label name(s): {shown}. Known names (case and spacing ignored): {known}. "
            "Map other names with a label-map file (lines 'name = type', or a JSON object) via --label-map."
        )


DEFAULT_LABEL_MAP = LabelMap()


def read_label_text(path: str | Path, expected: str, error: type[ValueError] = LabelError) -> str:
    """The text of a label file, or ``error`` naming the file and ``expected`` (its format) when it is binary or
    not UTF-8 -- never a bare codec error without a file name."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}; expected {expected}") from exc
    if b"\x00" in data[:8192]:
        raise error(f"{path} is a binary file, not text; expected a UTF-8 text file of {expected}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); expected {expected}. Re-save it as UTF-8."
        ) from exc


def read_label_map_file(path: str | Path, base: LabelMap = DEFAULT_LABEL_MAP) -> LabelMap:
    """Read overrides from a file and return ``base`` extended by them.

    The file is either a JSON object ``{"name": "type", ...}`` or text lines ``name = type`` (``#`` comments
    and blank lines ignored). A JSON key ``"__replace__": true`` replaces the base table instead of extending it.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"label-map file {path} does not exist")
    text = read_label_text(path, "lines 'name = type' or a JSON object {\"name\": \"type\"}")
    replace = False
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LabelError(f"label-map file {path} is not valid JSON: {exc}") from exc
        replace = bool(data.pop("__replace__", False))
        overrides = {str(k): str(v) for k, v in data.items()}
    else:
        overrides = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "=" not in line:
                raise LabelError(f"{path}:{number}: expected 'name = type', got {raw!r}")
            name, target = (part.strip() for part in line.split("=", 1))
            overrides[name] = target
    return LabelMap(overrides) if replace else base.with_overrides(overrides)

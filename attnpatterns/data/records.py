"""The record every input reader produces: one text or text pair, with a stable id and an optional label."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class InputError(ValueError):
    """An input file or dataset cannot be used as given; the message says how to fix it."""


@dataclass(frozen=True)
class TextExample:
    """One input: a single text (``text_b is None``) or a sentence pair, with an id unique within its source."""

    example_id: str
    text_a: str
    text_b: str | None = None
    label: int | float | None = None

    def __post_init__(self) -> None:
        # ids are compared and stored as strings (index lines, resume): an int id 1 must be the same id as "1"
        if not isinstance(self.example_id, str):
            object.__setattr__(self, "example_id", str(self.example_id))

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TextExample":
        return cls(**{k: data.get(k) for k in ("example_id", "text_a", "text_b", "label")})

"""Progress bars for long commands: a tqdm bar on stderr, or nothing with --quiet."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def progress_bar(total: int, quiet: bool, desc: str, unit: str = "it") -> Iterator[object | None]:
    """Yield a tqdm bar (call ``.update(n)``), or None when ``quiet``."""
    if quiet:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit)
    try:
        yield bar
    finally:
        bar.close()

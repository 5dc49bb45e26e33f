"""Fixtures shared by the extraction tests: one tiny random BERT (2 layers, 4 heads) saved and loaded once."""

from __future__ import annotations

import pytest

from attnpatterns.models import load_model
from tests.helpers import save_tiny_model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny"))
    return load_model(path)

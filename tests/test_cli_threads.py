"""The CLI bounds how long torch's OpenMP threads spin, before torch is imported, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SPY = """
import os, sys

class Spy:  # reports the setting at the moment torch is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            print("at torch import:", os.environ.get("GOMP_SPINCOUNT"), flush=True)
        return None

sys.meta_path.insert(0, Spy())
import attnpatterns.cli.app  # the console script's module; its commands import torch when they run
import torch
"""


def _spin_at_torch_import(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", SPY], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("at torch import:")]
    assert len(lines) == 1, out.stdout + out.stderr
    return lines[0].split(":", 1)[1].strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),  # the CLI's default
        ({"GOMP_SPINCOUNT": "5"}, "5"),  # the user's own value is kept
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "None"),  # an explicit wait policy: nothing added
    ],
)
def test_spin_count_is_set_before_torch_loads(env, expected):
    from attnpatterns.cli.app import GOMP_SPINCOUNT

    assert _spin_at_torch_import(**env) == (expected or GOMP_SPINCOUNT)

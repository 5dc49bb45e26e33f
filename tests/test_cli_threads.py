"""Process settings the CLI makes before any command runs, unless the user chose: how long torch's OpenMP threads
spin (set before torch is imported) and glibc malloc keeping freed memory."""

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


def _python(code: str, *args: str, drop, env: dict) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with this environment less the variables ``drop`` says to, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not drop(k)}
    return subprocess.run([sys.executable, "-c", code, *args], env={**clean, **env}, capture_output=True, text=True,
                          check=True)


def _spin_at_torch_import(**env) -> str:
    out = _python(SPY, drop=lambda k: k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"), env=env)
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


MALLOC_PROBE = """
import ctypes, sys
if sys.argv[1] == "cli":
    import attnpatterns.cli.app  # the console script's module: its import applies the malloc settings
libc = ctypes.CDLL("libc.so.6")

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
block = libc.malloc(24 * 2**20)
mapped = libc.mallinfo2().hblkhd  # bytes in blocks that have an mmap of their own
libc.free(block)
print(mapped >= 24 * 2**20, libc.mallinfo2().arena >= 24 * 2**20)  # mapped alone; heap kept after the free
"""


def _malloc_probe(mode: str, **env) -> str:
    out = _python(MALLOC_PROBE, mode, drop=lambda k: k.startswith("MALLOC_") or k == "GLIBC_TUNABLES", env=env)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="glibc's malloc only")
def test_cli_keeps_freed_memory_in_the_heap_unless_the_user_tuned_malloc():
    # glibc's default: a 24 MiB block gets its own mmap, and nothing of it stays in the heap after the free
    assert _malloc_probe("plain") == "True False"
    # the CLI: from the heap, and the heap keeps it for the next allocation
    assert _malloc_probe("cli") == "False True"
    # the user's own malloc settings win: the CLI leaves glibc alone
    assert _malloc_probe("cli", MALLOC_ARENA_MAX="4") == "True False"
    assert _malloc_probe("cli", GLIBC_TUNABLES="glibc.malloc.check=0") == "True False"

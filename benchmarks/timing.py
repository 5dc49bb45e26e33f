"""Side-by-side timing shared by the benchmark scripts: interleaved repeats and ratios with their spread.

Every script times its variants in rounds, one run of each variant per round, so that drift in machine load hits
them alike; a ratio is taken within each round (variant / baseline of the same round), and reported as the median
of the rounds with its min and max, beside the ratio of best times (the least disturbed estimate on a shared
machine).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

#: "Another job" for the loaded measurements: a 2-thread float32 matmul loop (as many threads as the project's
#: machines have cores), run in its own process.
LOAD_JOB = (
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "a = torch.randn(1024, 1024)\n"
    "while True:\n"
    "    a = torch.tanh(a @ a)\n"
)


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call (CUDA work is waited for when torch is imported and a GPU is there)."""
    sync = _cuda_sync()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _cuda_sync() -> Callable[[], None]:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.synchronize
    return lambda: None


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: bool = True,
                after: dict[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Optionally one warm-up call of each variant, then ``repeats`` rounds timing each variant once, in order.

    ``after[name]``, if given, is called after each call of variant ``name``, untimed (e.g. to delete what it wrote,
    which is no part of what is measured)."""
    after = after or {}
    if warmup:
        for name, fn in variants.items():
            fn()
            after.get(name, lambda: None)()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(seconds(fn))
            after.get(name, lambda: None)()
    return times


def spread(values: list[float], digits: int = 3) -> dict[str, float]:
    """Median, min and max of ``values``."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


def ratio(times: dict[str, list[float]], name: str, baseline: str, digits: int = 3) -> dict[str, float]:
    """``name`` over ``baseline``: per round (median, min, max) and as best over best."""
    per_round = [t / b for t, b in zip(times[name], times[baseline])]
    return {**spread(per_round, digits), "best": round(min(times[name]) / min(times[baseline]), digits)}


def describe(r: dict[str, float]) -> str:
    """``1.052x (rounds 1.031-1.094, best/best 1.047x)``."""
    return f"{r['median']:.3f}x (rounds {r['min']:.3f}-{r['max']:.3f}, best/best {r['best']:.3f}x)"


def machine_load() -> str:
    """The 1-minute load average and the number of CPUs, to print beside the figures."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return f"{os.cpu_count()} CPUs"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


#: The environment variables that set how long OpenMP's threads spin (the CLI sets one; bench_threads.py varies them).
SPIN_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def env_without_spin_settings() -> dict[str, str]:
    """This process's environment without :data:`SPIN_SETTINGS`, for a child that should get OpenMP's defaults."""
    return {k: v for k, v in os.environ.items() if k not in SPIN_SETTINGS}


@contextlib.contextmanager
def background_load(active: bool = True) -> Iterator[None]:
    """Run :data:`LOAD_JOB` beside the block (nothing when not ``active``), and stop it afterwards."""
    if not active:
        yield
        return
    # the other job keeps OpenMP's own defaults, whatever spin setting the measured runs are given
    job = subprocess.Popen([sys.executable, "-c", LOAD_JOB], env=env_without_spin_settings())
    try:
        time.sleep(3)  # let the load job start its threads
        yield
    finally:
        job.kill()
        job.wait()

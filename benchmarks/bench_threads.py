"""One fine-tuning step of the default run under OpenMP spin settings, idle and beside another 2-thread job.

torch's OpenMP worker threads spin (busy-wait) before they sleep; GNU OpenMP's default is 300,000 iterations. When
another job shares the cores, a parallel region then waits on a peer that is not running. The CLI sets
``GOMP_SPINCOUNT`` (attnpatterns/cli/app.py) before torch loads; this script measures why. Each setting runs in a
fresh process (OpenMP reads it when torch loads): the bundled MiniLM with a new 2-label head, a batch of 16 built-in
``reviews`` training sentences, forward + backward + clip + fused AdamW, 3 warm-up steps then the median of 15.
The "loaded" rows run the same while a second process loops a 2-thread 1024 x 1024 matmul. Ratios are to the
default setting of the same load.

Run:  uv run python benchmarks/bench_threads.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import background_load, env_without_spin_settings, machine_load  # noqa: E402

SETTINGS = {
    "default (300,000)": {},
    "GOMP_SPINCOUNT=100000": {"GOMP_SPINCOUNT": "100000"},
    "GOMP_SPINCOUNT=10000 (the CLI's)": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def step_child() -> None:
    import torch

    from attnpatterns.models import load_model
    from attnpatterns.tasks.task import load_task

    torch.manual_seed(0)
    loaded = load_model(None, "cpu", head="classification", num_labels=2)
    model = loaded.model.train()
    train = load_task("reviews").train[:16]
    enc = loaded.tokenizer([e.text_a for e in train], padding=True, max_length=64, truncation=True,
                           return_tensors="pt")
    labels = torch.tensor([e.label for e in train])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step():
        model(**enc, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    for _ in range(3):
        step()
    times = []
    for _ in range(15):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"median_ms": round(1000 * statistics.median(times), 1)}))


def measure(env: dict) -> float:
    out = subprocess.run([sys.executable, __file__, "--child"], env={**env_without_spin_settings(), **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]


def main() -> None:
    if "--child" in sys.argv:
        step_child()
        return
    for mode in ("idle", "loaded"):
        with background_load(mode == "loaded"):
            print(f"# {mode}: {machine_load()}")
            base = None
            for name, env in SETTINGS.items():
                ms = measure(env)
                base = base or ms
                print(f"{mode:6s} {name:34s} {ms:7.1f} ms per step   {ms / base:5.2f}x the default", flush=True)


if __name__ == "__main__":
    main()

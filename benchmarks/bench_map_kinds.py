"""Cost of each map kind on the bundled MiniLM, as a ratio to the bare forward pass, measured side by side.

For the same batches (the built-in sentences and pairs, cycled), one repeat times, in turn: the bare forward with
output_attentions=True, then a forward under MapCapture for each kind alone (raw, normed, rollout, resln, alti,
valuezero) and for raw,normed,rollout,resln,alti together. Maps stay in memory (no disk), so the ratio is the cost
of the hooks and the maths. Repeats are interleaved so that drift in machine load hits every kind alike; the ratio
of each repeat is taken against that repeat's bare time, and the median, min and max over repeats are printed,
with the ratio of best times (best of the kind / best bare: on a shared machine the least disturbed estimate).
Targets: rollout and resln <= 1.5x the forward; value zeroing is reported (it recomputes each layer T + 1 times).

Run:  uv run python benchmarks/bench_map_kinds.py [--examples 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_extraction import _batches, _examples  # noqa: E402  (same inputs as the extraction benchmark)

VARIANTS: dict[str, tuple[str, ...]] = {
    "raw": ("raw",),
    "normed": ("normed",),
    "rollout": ("rollout",),
    "resln": ("resln",),
    "alti": ("alti",),
    "valuezero": ("valuezero",),
    "raw+normed+rollout+resln+alti": ("raw", "normed", "rollout", "resln", "alti"),
}


def timings(n: int, repeats: int, batch_size: int, max_length: int, variants: list[str]) -> dict:
    import torch

    from attnpatterns.extraction import MapCapture
    from attnpatterns.models import load_model

    loaded = load_model(None, "cpu")
    batches = _batches(loaded, _examples(n), batch_size, max_length)
    model = loaded.model
    seconds: dict[str, list[float]] = {"bare": [], **{v: [] for v in variants}}
    with torch.inference_mode():
        model(**batches[0], output_attentions=True)  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            for batch in batches:
                model(**batch, output_attentions=True)
            seconds["bare"].append(time.perf_counter() - t)
            for name in variants:
                with MapCapture(model, kinds=VARIANTS[name]) as cap:
                    t = time.perf_counter()
                    for batch in batches:
                        model(**batch)
                        cap.pop()
                    seconds[name].append(time.perf_counter() - t)
    out = {"examples": n, "batches": len(batches), "repeats": repeats,
           "bare_s_median": round(statistics.median(seconds["bare"]), 3)}
    for name in variants:
        ratios = [s / b for s, b in zip(seconds[name], seconds["bare"])]
        out[name] = {"s_median": round(statistics.median(seconds[name]), 3),
                     "ratio_best": round(min(seconds[name]) / min(seconds["bare"]), 3),
                     "ratio_median": round(statistics.median(ratios), 3),
                     "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names from VARIANTS")
    args = parser.parse_args()
    import torch

    print(f"# torch {torch.__version__}, threads: {torch.get_num_threads()}, device: cpu")
    result = timings(args.examples, args.repeats, args.batch_size, args.max_length, args.variants.split(","))
    print(json.dumps(result, indent=1))
    for name in args.variants.split(","):
        r = result[name]
        print(f"{name:32s} best/best {r['ratio_best']:7.3f}x   per repeat: median {r['ratio_median']:.3f}x "
              f"(min {r['ratio_min']:.3f}, max {r['ratio_max']:.3f})")


if __name__ == "__main__":
    main()

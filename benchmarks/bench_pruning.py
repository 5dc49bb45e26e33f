"""Pruning benchmarks on the bundled MiniLM, side by side in one run.

1. One importance pass over N examples (|∂L/∂gate| for every head and MLP), for each importance variant
   (per_example, bertology, michel), divided by one epoch of forward + backward over the same N examples in
   batches of the same size (target: <= 1.2). The repeats interleave the epoch and the variants, and each repeat
   gives one ratio per variant (its time over that repeat's epoch): the median and the range of those ratios.
2. Inference time of a physically pruned model with 50% of its heads removed divided by that of the same model
   with those heads masked by gates (below 1 means surgery pays off).

Usage: python benchmarks/bench_pruning.py [--examples 128] [--batch-size 32] [--max-length 64] [--repeats 3]
       [--threads N] [--device cpu|cuda] [--json out.json]
Each timing is the median of ``--repeats`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import interleaved, seconds  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(seconds(fn) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--task", default="reviews", help="built-in task whose dev texts are the inputs")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from attnpatterns.models import load_model
    from attnpatterns.tasks.batches import encode, iterate_batches
    from attnpatterns.masking.gates import gated
    from attnpatterns.pruning.importance import VARIANTS, gate_gradients
    from attnpatterns.masking.surgery import physically_prune
    from attnpatterns.tasks.task import load_task
    from attnpatterns.runtime import resolve_device, seed_everything

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0)
    device = resolve_device(args.device)
    task = load_task(args.task)
    loaded = load_model(None, device, head="classification", num_labels=task.num_labels)
    model, tokenizer = loaded.model, loaded.tokenizer
    examples = list(task.dev[: args.examples])
    features = encode(tokenizer, examples, args.max_length)
    pad = tokenizer.pad_token_id or 0
    batches = [b for _, b in iterate_batches(features, args.batch_size, device, pad)]

    def importance_pass(variant):
        return lambda: gate_gradients(model, features, task.num_labels, batch_size=args.batch_size,
                                      variant=variant, pad_token_id=pad)

    def train_epoch():  # forward + backward of every batch, as one training epoch without the optimiser step
        model.train()
        for batch in batches:
            model(**batch).loss.backward()
        model.zero_grad(set_to_none=True)
        model.eval()

    passes = {"epoch": train_epoch, **{v: importance_pass(v) for v in VARIANTS}}
    times = interleaved(passes, args.repeats)
    ratios = {v: [t / e for t, e in zip(times[v], times["epoch"])] for v in VARIANTS}
    t_epoch = statistics.median(times["epoch"])

    L, H = loaded.adapter.num_layers, loaded.adapter.num_heads
    rng = np.random.default_rng(0)
    head_mask = np.ones((L, H), np.float32)
    for layer in range(L):  # half the heads of every layer
        head_mask[layer, rng.choice(H, H // 2, replace=False)] = 0
    inputs = [{k: v for k, v in b.items() if k != "labels"} for b in batches]
    pruned = physically_prune(copy.deepcopy(model), head_mask)

    @torch.no_grad()
    def masked_inference():
        with gated(model, head_mask):
            for batch in inputs:
                model(**batch)

    @torch.no_grad()
    def pruned_inference():
        for batch in inputs:
            pruned(**batch)

    t_masked = _median_time(masked_inference, args.repeats)
    t_pruned = _median_time(pruned_inference, args.repeats)

    results = {
        "model": loaded.name,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "examples": len(examples),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "train_epoch_fwd_bwd_s": round(t_epoch, 3),
        "importance_pass_s": {v: round(statistics.median(times[v]), 3) for v in VARIANTS},
        "importance_over_epoch": {v: round(statistics.median(r), 3) for v, r in ratios.items()},
        "importance_over_epoch_range": {v: [round(min(r), 3), round(max(r), 3)] for v, r in ratios.items()},
        "masked_inference_s": round(t_masked, 3),
        "pruned_inference_s": round(t_pruned, 3),
        "pruned_over_masked": round(t_pruned / t_masked, 3),
        "heads_removed": int((head_mask == 0).sum()),
    }
    print(f"MiniLM ({L} x {H} heads) on {device}, {torch.get_num_threads()} threads, N={len(examples)} examples, "
          f"batch {args.batch_size}, max length {args.max_length}, median of {args.repeats}")
    print(f"epoch fwd+bwd        {t_epoch:8.3f} s")
    for v, r in ratios.items():
        print(f"importance {v:<11} {statistics.median(times[v]):6.3f} s   ratio / epoch = {statistics.median(r):.3f} "
              f"(range {min(r):.3f}-{max(r):.3f})  (target <= 1.2)")
    print(f"masked inference     {t_masked:8.3f} s   ({int(head_mask.sum())} of {L * H} heads kept)")
    print(f"pruned inference     {t_pruned:8.3f} s")
    print(f"  ratio pruned (50% heads) / masked = {t_pruned / t_masked:.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()

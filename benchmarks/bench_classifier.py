"""Pattern-classifier benchmark: classification speed, robustness to crop/pad/resize, and training time.

Prints, per map kind:
  * maps classified per second, end to end (validation + preprocessing + network) and network only, on CPU with
    1 thread and with all threads, and on the GPU when there is one; also for 512-token maps;
  * label agreement under the crop/pad/resize treatments of ``attnpatterns.patterns.robustness`` (target >= 95%),
    on maps of texts the corpus does not hold (``reviews`` and ``entail`` dev texts through the bundled MiniLM):
    measured on its own training maps, a classifier that memorises them would look less robust than it is;
  * the time to train once (no CV) and to cross-validate + train on the labelled set, with 1 CPU thread.

Maps for speed: the project corpus (``annotations/``) when it has labelled maps, else the unseen maps above.
Classifier: the shipped default checkpoint of each kind; when there is none yet, one trained on the synthetic maps of
``tests/patterns/synthetic.py`` (said in the output; such figures are only a smoke test). Training time is measured
on the corpus when it exists, else on 600 synthetic maps.

Run:  uv run python benchmarks/bench_classifier.py [--examples 24] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.patterns.synthetic


def corpus_set(kind: str):
    from attnpatterns.patterns.io import DataError, read_corpus

    try:
        return read_corpus(None, kind=kind)
    except (DataError, FileNotFoundError, ValueError):
        return None


def annotator_macro_f1(kind: str) -> dict | None:
    """Macro-F1 of the second annotation pass against the first (``attnpatterns annotate agreement``)."""
    from attnpatterns.annotation.agreement import pass_agreement
    from attnpatterns.annotation.corpus import read_labels, read_map_index

    try:
        agreement = pass_agreement(read_labels(), read_map_index())[kind]
    except (FileNotFoundError, OSError):
        return None
    if not agreement.n:
        return None
    return {"n_maps": agreement.n, "macro_f1": round(agreement.macro_f1, 4), "accuracy": round(agreement.observed, 4)}


def extracted_maps(n_examples: int, workdir: Path) -> tuple[dict[str, list], dict[str, list]]:
    """Maps of the bundled MiniLM for texts the corpus does not hold: half ``reviews`` dev sentences, half
    ``entail`` dev pairs (so a trained classifier has never seen them); per kind, the maps and their segment ids."""
    from attnpatterns.constants import DEFAULT_MODEL
    from attnpatterns.data.builtin import load_builtin_task
    from attnpatterns.data.records import TextExample
    from attnpatterns.extraction import ExtractionConfig, extract_maps
    from attnpatterns.models import load_model

    singles = [TextExample(f"r{i}", row["sentence"]) for i, row in enumerate(load_builtin_task("reviews", "dev"))]
    pairs = [TextExample(f"e{i}", row["premise"], row["hypothesis"])
             for i, row in enumerate(load_builtin_task("entail", "dev"))]
    examples = singles[: n_examples - n_examples // 2] + pairs[: n_examples // 2]
    run = extract_maps(load_model(DEFAULT_MODEL, "cpu"), examples, workdir / "run", ExtractionConfig())
    out: dict[str, list] = {k: [] for k in run.kinds}
    segments: dict[str, list] = {k: [] for k in run.kinds}
    for rec in run.iter_maps():
        out[rec.kind].append(rec.array)
        segments[rec.kind].append(rec.segment_ids)
    return out, segments


def synthetic_classifier(kind: str):
    from attnpatterns.patterns.train import TrainConfig, train_classifier
    from tests.patterns.synthetic import synthetic_set

    data = synthetic_set(n_per_type=60, kind=kind, seed=11, min_tokens=4, max_tokens=64)
    return train_classifier(data, config=TrainConfig(), cross_validate=False).classifier


def maps_per_second(classifier, maps, repeats: int = 3, batch_size: int = 512, segments=None) -> tuple[float, float]:
    """(end-to-end, network-only) maps per second, best of ``repeats``."""
    import torch

    def sync():
        if classifier.device.type == "cuda":
            torch.cuda.synchronize()

    classifier.predict_proba(maps[:64])  # warm-up
    best_total = best_net = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        feats = classifier.features(maps, batch_size=batch_size, segments=segments)
        middle = time.perf_counter()
        classifier.predict_features(feats, batch_size=batch_size)
        sync()
        end = time.perf_counter()
        best_total = min(best_total, end - start)
        best_net = min(best_net, end - middle)
    return len(maps) / best_total, len(maps) / best_net


def training_time(kind: str, data) -> dict:
    import torch

    from attnpatterns.patterns.train import train_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {"n_maps": len(data), "source": data.source}
        for label, cv in (("fit_only", False), ("cv_and_fit", True)):
            wall, cpu = time.perf_counter(), time.process_time()
            result = train_classifier(data, kind, cross_validate=cv)
            out[f"{label}_wall_s"] = round(time.perf_counter() - wall, 2)
            out[f"{label}_cpu_s"] = round(time.process_time() - cpu, 2)
            if cv:
                out["cv_macro_f1"] = round(result.cv.report.macro_f1, 4)
            else:
                out["fit_epochs_per_member"] = [len(h.val_loss) for h in result.history]
        return out
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=24,
                        help="Unseen texts (reviews + entail dev) whose maps measure robustness (x 72 heads).")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    import numpy as np
    import torch

    from attnpatterns.constants import HEAD_KINDS
    from attnpatterns.patterns import NoDefaultCheckpointError, load_classifier
    from attnpatterns.patterns.robustness import treatment_agreement
    from tests.patterns.synthetic import synthetic_set

    results: dict = {"cpu_threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name(0)
                     if torch.cuda.is_available() else None, "kinds": {}}
    corpora = {k: corpus_set(k) for k in HEAD_KINDS}  # the classifiers are per head kind
    extracted = None
    with tempfile.TemporaryDirectory() as tmp:
        extracted, extracted_ids = extracted_maps(args.examples, Path(tmp))  # unseen texts, for robustness
        for kind in HEAD_KINDS:
            corpus = corpora[kind]
            maps = corpus.arrays if corpus is not None else extracted[kind]
            ids = corpus.segments if corpus is not None else extracted_ids[kind]
            source = f"corpus ({corpus.source})" if corpus is not None else f"MiniLM maps of {args.examples} texts"
            try:
                classifier, clf_source = load_classifier(kind=kind), "shipped default"
            except NoDefaultCheckpointError:
                classifier, clf_source = synthetic_classifier(kind), "trained on synthetic maps (no default yet)"
            row: dict = {"maps": source, "n_maps": len(maps), "classifier": clf_source,
                         "median_tokens": float(np.median([m.shape[0] for m in maps]))}
            rng = np.random.default_rng(0)
            long_maps = [rng.dirichlet(np.ones(512), size=512).astype(np.float32) for _ in range(64)]

            threads = torch.get_num_threads()
            for label, n_threads in (("cpu_1_thread", 1), (f"cpu_{threads}_threads", threads)):
                torch.set_num_threads(n_threads)
                total, net = maps_per_second(classifier.to("cpu"), maps, segments=ids)
                row[f"{label}_maps_per_s"] = round(total)
                row[f"{label}_network_only_maps_per_s"] = round(net)
                row[f"{label}_512_token_maps_per_s"] = round(maps_per_second(classifier, long_maps, 2)[0])
            torch.set_num_threads(threads)
            if torch.cuda.is_available():
                total, net = maps_per_second(classifier.to("cuda"), maps, segments=ids)
                row["gpu_maps_per_s"], row["gpu_network_only_maps_per_s"] = round(total), round(net)
                row["gpu_512_token_maps_per_s"] = round(maps_per_second(classifier, long_maps, 2)[0])
                classifier.to("cpu")

            # robustness on maps the classifier never saw (the corpus maps are its training set)
            agreement = treatment_agreement(classifier, extracted[kind], segments=extracted_ids[kind])
            row["agreement"] = {k: round(v, 4) for k, v in agreement.items()}
            row["agreement_maps"] = f"{len(extracted[kind])} maps of {args.examples} unseen texts (MiniLM)"
            row["annotators_second_vs_first_pass"] = annotator_macro_f1(kind)
            if not args.skip_training:
                data = corpus if corpus is not None else synthetic_set(120, kind, seed=5, min_tokens=4, max_tokens=64)
                row["training"] = training_time(kind, data)
            results["kinds"][kind] = row

    for kind, row in results["kinds"].items():
        print(f"\n== {kind} maps: {row['n_maps']} from {row['maps']}; classifier {row['classifier']}")
        for key, value in row.items():
            if key.endswith("_per_s"):
                print(f"  {key:<42} {value:>10,}")
        print(f"  label agreement under treatments (target >= 0.95), on {row['agreement_maps']}:")
        for key, value in row["agreement"].items():
            print(f"    {key:<14} {value:.3f}")
        if row.get("annotators_second_vs_first_pass"):
            print(f"  annotators, second vs first pass: {row['annotators_second_vs_first_pass']}")
        if "training" in row:
            print("  training (1 CPU thread): " + ", ".join(f"{k}={v}" for k, v in row["training"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

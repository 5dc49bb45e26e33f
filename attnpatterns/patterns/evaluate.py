"""Scores of a classifier on labelled maps: per-class precision/recall/F1, macro-F1, Cohen's kappa and the confusion
matrix.

Metrics come from scikit-learn and always cover all five pattern types in :data:`PATTERN_TYPES` order (a type
with no maps gets support 0 and, by scikit-learn's ``zero_division=0``, scores 0; it is then left out of the
macro average, which is taken over the types present in the true labels). Cohen's kappa is given beside macro-F1
because the annotators' agreement is reported as kappa (``annotations/agreement.json``), so a classifier can be set
against the human ceiling in the same unit. The same report serves the cross-validation of ``attnpatterns train``
(out-of-fold predictions) and ``attnpatterns evaluate``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

from attnpatterns.constants import PATTERN_TYPES

#: Run type in the manifest of an `attnpatterns evaluate -o` folder.
EVALUATION_RUN = "evaluation"
REPORT_JSON = "report.json"
REPORT_TXT = "report.txt"
CONFUSION_PNG = "confusion_matrix.png"
#: Types with fewer true maps than this are left out of the second macro-F1 figure (see macro_f1_over).
RELIABLE_SUPPORT = 10


@dataclass
class EvaluationReport:
    """Per-class and macro scores for predictions ``y_pred`` against ``y_true`` (indices into ``labels``)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    labels: tuple[str, ...] = PATTERN_TYPES
    title: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.y_true = np.asarray(self.y_true, dtype=np.int64)
        self.y_pred = np.asarray(self.y_pred, dtype=np.int64)
        if self.y_true.shape != self.y_pred.shape:
            raise ValueError("y_true and y_pred must have the same length")
        self.labels = tuple(self.labels)

    @property
    def present(self) -> list[int]:
        """Class indices that occur in the true labels (the macro average is over these)."""
        return sorted(set(self.y_true.tolist()))

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        p, r, f, s = precision_recall_fscore_support(
            self.y_true, self.y_pred, labels=list(range(len(self.labels))), zero_division=0
        )
        return {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(self.labels)
        }

    @property
    def macro_f1(self) -> float:
        _, _, f, _ = precision_recall_fscore_support(
            self.y_true, self.y_pred, labels=self.present, average="macro", zero_division=0
        )
        return float(f)

    def macro_f1_over(self, min_support: int = RELIABLE_SUPPORT) -> float | None:
        """Macro-F1 over the types with at least ``min_support`` true maps (None if there are none).

        With a handful of maps of a type, its F1 moves by a large step whenever one map flips, so this is given
        beside (never instead of) the macro-F1 over all types present.
        """
        support = np.bincount(self.y_true, minlength=len(self.labels))
        kept = [i for i in range(len(self.labels)) if support[i] >= min_support]
        if not kept:
            return None
        _, _, f, _ = precision_recall_fscore_support(
            self.y_true, self.y_pred, labels=kept, average="macro", zero_division=0
        )
        return float(f)

    @property
    def kappa(self) -> float:
        """Cohen's kappa of the predictions against the true labels (chance-corrected agreement).

        When the true and predicted labels together hold one type only, kappa is 0/0; the predictions then agree
        perfectly and it is reported as 1.0, as :func:`attnpatterns.annotation.agreement.pass_agreement` does.
        """
        if len(set(self.y_true.tolist()) | set(self.y_pred.tolist())) < 2:
            return 1.0
        return float(cohen_kappa_score(self.y_true, self.y_pred, labels=list(range(len(self.labels)))))

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.y_true, self.y_pred))

    @property
    def confusion(self) -> np.ndarray:
        """Counts (n_labels, n_labels): rows = true type, columns = predicted type."""
        return confusion_matrix(self.y_true, self.y_pred, labels=list(range(len(self.labels))))

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "labels": list(self.labels),
            "n_maps": int(self.y_true.size),
            "macro_f1": self.macro_f1,
            "cohen_kappa": self.kappa,
            f"macro_f1_types_with_{RELIABLE_SUPPORT}_or_more_maps": self.macro_f1_over(RELIABLE_SUPPORT),
            "accuracy": self.accuracy,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion.tolist(),
            "y_true": self.y_true.tolist(),
            "y_pred": self.y_pred.tolist(),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvaluationReport:
        known = {"title", "labels", "n_maps", "macro_f1", "cohen_kappa", "accuracy", "per_class", "confusion_matrix",
                 f"macro_f1_types_with_{RELIABLE_SUPPORT}_or_more_maps"}
        extra = {k: v for k, v in data.items() if k not in known | {"y_true", "y_pred"}}
        return cls(data["y_true"], data["y_pred"], tuple(data["labels"]), data.get("title", ""), extra)

    def to_text(self) -> str:
        width = max(len(name) for name in self.labels)
        lines = [self.title] if self.title else []
        lines.append(f"{'type':<{width}}  precision  recall     f1  support")
        for name, s in self.per_class.items():
            lines.append(
                f"{name:<{width}}  {s['precision']:9.3f}  {s['recall']:6.3f}  {s['f1']:5.3f}  {s['support']:7d}"
            )
        lines.append(f"macro-F1 {self.macro_f1:.3f}   Cohen's kappa {self.kappa:.3f}   accuracy {self.accuracy:.3f}   "
                     f"maps {self.y_true.size}")
        reliable = self.macro_f1_over(RELIABLE_SUPPORT)
        support = np.bincount(self.y_true, minlength=len(self.labels))
        if reliable is not None and any(support[i] < RELIABLE_SUPPORT for i in self.present):
            lines.append(f"macro-F1 over the types with at least {RELIABLE_SUPPORT} maps {reliable:.3f}")
        if "fold_macro_f1" in self.extra:
            folds = np.asarray(self.extra["fold_macro_f1"])
            lines.append(
                f"per-fold macro-F1 {folds.mean():.3f} +- {folds.std():.3f} over {folds.size} folds: "
                + " ".join(f"{v:.3f}" for v in folds)
            )
        if "repeat_macro_f1" in self.extra:
            repeats = np.asarray(self.extra["repeat_macro_f1"])
            lines.append(
                f"repeated with other fold splits: macro-F1 {repeats.mean():.3f} +- {repeats.std():.3f} over "
                f"{repeats.size} runs: " + " ".join(f"{v:.3f}" for v in repeats) + " (the tables are the first run's)"
            )
        if "member_macro_f1" in self.extra:
            parts = self.extra["member_macro_f1"]
            w = self.extra.get("forest_weight")
            mix = f" (mixed {1 - w:.2f} : {w:.2f})" if w is not None else ""
            lines.append("macro-F1 of each part alone" + mix + ": "
                         + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
        if "robustness" in self.extra:
            lines.append(
                "label agreement under crop/pad/resize (test maps): "
                + ", ".join(f"{k} {v:.3f}" for k, v in self.extra["robustness"].items())
            )
        short = [n[:6] for n in self.labels]
        lines.append("confusion (rows = true, columns = predicted):")
        lines.append(" " * (width + 2) + " ".join(f"{s:>6}" for s in short))
        for name, row in zip(self.labels, self.confusion):
            lines.append(f"{name:<{width}}  " + " ".join(f"{int(v):6d}" for v in row))
        return "\n".join(lines)

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``report.json``, ``report.txt`` and ``confusion_matrix.png`` into ``folder``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / REPORT_JSON, "text": folder / REPORT_TXT, "confusion": folder / CONFUSION_PNG}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        paths["text"].write_text(self.to_text() + "\n", encoding="utf-8")
        fig, ax = plt.subplots(figsize=(5.6, 4.8))
        plot_confusion_matrix(self, ax=ax)
        fig.tight_layout()
        fig.savefig(paths["confusion"], dpi=120)
        plt.close(fig)
        return paths


def plot_confusion_matrix(report: EvaluationReport, ax=None, normalise: bool = True):
    """Heat map of the confusion matrix (row-normalised unless ``normalise=False``) with counts; returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.8))
    counts = report.confusion
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalise else counts
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true type" if normalise else "maps")
    ticks = range(len(report.labels))
    ax.set_xticks(list(ticks), report.labels, rotation=35, ha="right")
    ax.set_yticks(list(ticks), report.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            colour = "white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour, fontsize=8)
    ax.set_title(report.title or f"macro-F1 {report.macro_f1:.3f}", fontsize=9)
    return ax


def evaluate_classifier(classifier, data, batch_size: int = 256) -> EvaluationReport:
    """Score a :class:`~attnpatterns.patterns.classifier.PatternClassifier` on a labelled set of its kind."""
    classifier.check_kind(data.kind, where=data.source or "the evaluation data")
    if len(data) == 0:
        raise ValueError("the evaluation set is empty")
    if data.segments is None:
        classifier.warn_without_segments(f"the maps of {data.source or 'this set'}")
    probs = classifier.predict_proba(data.arrays, names=data.names, batch_size=batch_size, segments=data.segments)
    title = f"{classifier.kind} maps: {data.source}" if data.source else f"{classifier.kind} maps"
    return EvaluationReport(data.y, probs.argmax(axis=1), PATTERN_TYPES, title, {"names": list(data.names)})


def shown_path(path: str | None) -> str | None:
    """``path`` relative to the working directory (the repository root) when it lies under it, so that a shipped
    report does not record the folder of the machine that rebuilt it; other paths as given."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def report_title(classifier, source: str, kind: str, fallback: str | None = None) -> str:
    """The title of a classifier's evaluation report: its checkpoint (relative to the working directory when it lies
    under it, :func:`shown_path`; ``fallback`` when the checkpoint records no path), the data and the kind."""
    return f"{shown_path(classifier.metadata.get('path')) or fallback} on {source} ({kind} maps)"


def report_from_labels(true: Sequence[str], pred: Sequence[str], title: str = "") -> EvaluationReport:
    """A report from label names (for example, two annotators' passes over the same maps)."""
    return EvaluationReport(
        [PATTERN_TYPES.index(t) for t in true], [PATTERN_TYPES.index(p) for p in pred], PATTERN_TYPES, title
    )


def open_evaluation_folder(
    output: str | Path, classifier, data: str | Path, format: str = "auto", kind: str | None = None,
    label_map: str | Path | None = None, overwrite: bool = False, dataset=None,
):
    """Clear ``output`` for the report of ``classifier`` on ``data`` (a :class:`~attnpatterns.runfolder.RunFolder`),
    writing nothing: call it before the evaluation so that a folder it refuses costs no work. ``dataset``, the
    labelled set as read, puts its content in the fingerprint: a report of other labels (the same path, labels
    changed since) is not replaced without ``overwrite``."""
    from attnpatterns.runfolder import fingerprint, open_run_folder

    ident = {"checkpoint": classifier.metadata.get("weights_sha256"), "data": str(Path(data).resolve()),
             "format": format, "kind": kind or classifier.kind,
             "label_map": None if label_map is None else str(label_map)}
    if dataset is not None:
        ident["maps"] = dataset.digest()
    return open_run_folder(output, EVALUATION_RUN, fingerprint(ident), overwrite)


def save_evaluation(report: EvaluationReport, folder, checkpoint: str, data: str | Path, kind: str) -> Path:
    """Write ``report`` (JSON, text, confusion matrix) into the folder from :func:`open_evaluation_folder`, with a
    manifest that is ``complete`` only once every file is there."""
    folder.start({"checkpoint": str(checkpoint), "data": str(data), "kind": kind})
    report.save(folder.path)
    folder.finish(macro_f1=report.macro_f1, cohen_kappa=report.kappa)
    return folder.path

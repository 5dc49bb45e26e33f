"""A self-contained HTML report of a run: pruning, survivors, pattern distributions, tests and figures.

The report is one HTML file with its figures embedded as PNG (base64), so it can be mailed or archived alone.
It is built from a :class:`~attnpatterns.analysis.compare.ComparisonResult` plus, optionally, the pruning logs
of the run and the run's own manifest; :func:`collect_run` finds all three under a run folder.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from attnpatterns import __version__
from attnpatterns.analysis.compare import COMPARISONS, ComparisonResult, condition_label, merge_results
from attnpatterns.analysis.runs import PruningLog, find_comparisons, find_pruning_logs, read_run_manifest
from attnpatterns.analysis.tables import AnalysisInputError
from attnpatterns.constants import ALL_HEADS, FINETUNED, MAP_KINDS, PATTERN_TYPES, SUPER_SURVIVORS


def _prose(text: str) -> str:
    """One paragraph from a wrapped, indented block of text."""
    return " ".join(text.split())


HOW_TO_READ = _prose("""
    Every attention map (one head on one input text) was labelled with one of five pattern types by the
    pattern classifier: vertical, diagonal, vertical+diagonal, block or heterogeneous. Heterogeneous maps are
    the ones that could carry input-specific, potentially interpretable structure. <em>Super-survivors</em>
    are the heads kept by structured pruning in every seed; the <em>pruned model</em> is the fine-tuned model
    with only those heads switched on (not retrained). The question, after Prasanna et al. (2020), is whether
    super-survivors have more heterogeneous patterns than the rest of the model. Shares are pooled over
    examples &times; heads; the bracketed ranges are {level} bootstrap intervals that resample <em>heads</em> (the
    maps of one head are not independent). P-values come from permutation tests that shuffle whole heads
    between the groups; <em>adjusted</em> p-values correct for the many types, kinds and tasks tested (Holm,
    unless stated otherwise). A small adjusted p (say &lt; 0.05) with an interval for the difference that
    excludes zero indicates a real difference; a large p means the data show no difference, which with few
    super-survivor heads is weak evidence either way. r is the correlation, over the full model's maps,
    between &ldquo;this map is heterogeneous&rdquo; and &ldquo;its head survived&rdquo; (the paper reports r
    &asymp; 0.002).
""")

METHODS = [
    (
        "survivors_vs_rest",
        _prose("""
            Full-model maps only; super-survivor heads against all other heads. Same maps on both sides, so a
            difference says which heads pruning keeps.
        """),
    ),
    (
        "pruned_vs_rest",
        _prose("""
            Super-survivors measured in the pruned model against the other heads of the full model. The groups
            are disjoint sets of heads, as a permutation test requires; comparing with &ldquo;all heads&rdquo;
            would put the survivors on both sides and dilute any difference.
        """),
    ),
    (
        "pruning_effect",
        _prose("""
            The same super-survivor heads in the pruned and in the full model, paired by head (sign-flip
            permutation): does removing the other heads change the survivors' patterns?
        """),
    ),
    ("finetuning_effect", "Every head with fine-tuned against pretrained weights, paired by head."),
]


@dataclass
class ReportInputs:
    """What a report shows: a comparison, the pruning logs of the run, and the run's manifest."""

    comparison: ComparisonResult
    pruning_logs: list[PruningLog] = field(default_factory=list)
    run_manifest: dict | None = None
    source: str | None = None


def collect_run(rundir: str | Path) -> ReportInputs:
    """Find the comparison(s), pruning logs and manifest under a run folder (see :mod:`.runs`)."""
    rundir = Path(rundir)
    if not rundir.is_dir():
        what = "is a file, not a folder" if rundir.exists() else "does not exist"
        raise AnalysisInputError(
            f"run folder {rundir} {what}; pass the folder that holds the output of `attnpatterns compare`"
        )
    folders = find_comparisons(rundir)
    if not folders:
        raise AnalysisInputError(
            f"no comparison results (comparison.json) under {rundir}; run `attnpatterns compare ... -o "
            f"{rundir / 'compare'}` first (or `attnpatterns pipeline`)"
        )
    comparison = merge_results([ComparisonResult.load(f) for f in folders])
    logs = find_pruning_logs(rundir, comparison.task_names)
    return ReportInputs(comparison, logs, read_run_manifest(rundir), source=str(rundir))


def build_report(
    comparison: ComparisonResult,
    pruning_logs: Sequence[PruningLog] = (),
    run_manifest: dict | None = None,
    title: str = "Attention patterns of super-survivor heads",
    source: str | None = None,
    figures: bool = True,
) -> str:
    """Render the report as one HTML string (figures embedded unless ``figures=False``)."""
    r = comparison
    parts = [_HEAD.format(title=_e(title))]
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<h1>{_e(title)}</h1>")
    parts.append(
        f"<p class='meta'>Generated {stamp} by attnpatterns {_e(__version__)}"
        + (f" from <code>{_e(source)}</code>" if source else "")
        + ".</p>"
    )
    level = f"{100 * r.config.confidence_level:g}%"  # the level the intervals were computed at: 95%, 80%, 97.5%
    how_to_read = HOW_TO_READ.replace("{level}", level)
    parts.append(f"<div class='howto'><h2>How to read this</h2><p>{how_to_read}</p></div>")
    if r.notes:
        parts.append(
            "<div class='notes'><h3>Notes on the inputs</h3><ul>"
            + "".join(f"<li>{_e(n)}</li>" for n in r.notes)
            + "</ul></div>"
        )
    parts.append(_summary_section(r))
    parts.append(_run_section(r, run_manifest))
    logs_by_task: dict[str | None, list[PruningLog]] = {}
    for log in pruning_logs:
        logs_by_task.setdefault(log.task, []).append(log)
    for task in r.task_names:
        parts.append(_task_section(r, task, logs_by_task.get(task, []), figures))
    unassigned = [log for t, logs in logs_by_task.items() if t not in r.tasks for log in logs]
    if unassigned:
        parts.append(
            "<h2>Other pruning logs</h2><p>These logs could not be matched to a task of the comparison.</p>"
        )
        parts.append(_pruning_tables(unassigned))
    parts.append(_methods_section(r))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def report_from_run(rundir: str | Path, title: str | None = None, figures: bool = True) -> str:
    """:func:`collect_run` then :func:`build_report`."""
    inputs = collect_run(rundir)
    kwargs = {"title": title} if title else {}
    return build_report(
        inputs.comparison,
        inputs.pruning_logs,
        inputs.run_manifest,
        source=inputs.source,
        figures=figures,
        **kwargs,
    )


# ------------------------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------------------------


def _summary_section(r: ComparisonResult) -> str:
    rows = []
    het = "heterogeneous"
    for task in r.task_names:
        info = r.tasks[task]
        surv = info.get("survivors", {})
        n_total = int(surv.get("n_layers", 0)) * int(surv.get("n_heads", 0))
        for kind in info.get("kinds", []):
            row = {
                "task": task,
                "kind": kind,
                "super-survivors": f"{len(surv.get('super_survivor_heads', []))} / {n_total}",
                "κ (heads)": _num(surv.get("fleiss_kappa_heads"), 2),
            }
            for weights, heads in ((FINETUNED, ALL_HEADS), (FINETUNED, SUPER_SURVIVORS)):
                d = _dist_row(r, task, kind, condition_label(weights, heads), het)
                row[f"heterogeneous: {heads}"] = _pct_ci(d) if d is not None else "–"
            for comp in ("pruned_vs_rest", "survivors_vs_rest"):
                t = _test_row(r, task, kind, FINETUNED, comp, "difference", het)
                row[f"Δ heterogeneous, {comp} (adj. p)"] = (
                    f"{_pp(t['estimate'])} ({_p(t['p_adjusted'])})" if t is not None else "–"
                )
            c = _corr_row(r, task, kind, FINETUNED)
            row["r (het., survived)"] = _num(c["r"], 3) if c is not None else "–"
            rows.append(row)
    if not rows:
        return "<h2>At a glance</h2><p>No results.</p>"
    return (
        "<h2>At a glance</h2><p>Fine-tuned weights. Differences are super-survivors minus the rest, in "
        "percentage points.</p>" + _table(pd.DataFrame(rows))
    )


def _run_section(r: ComparisonResult, manifest: dict | None) -> str:
    items = []
    models = {}
    for task in r.task_names:
        for cond, c in r.tasks[task].get("conditions", {}).items():
            models.setdefault(cond.split(",")[0], set()).add(
                c.get("model_name") or c.get("model") or "unknown"
            )
    for weights, names in models.items():
        items.append((f"model ({weights})", ", ".join(sorted(names))))
    items.append(("tasks", ", ".join(r.task_names)))
    for task in r.task_names:
        info = r.tasks[task]
        seeds = info.get("survivors", {}).get("seeds") or []
        ex = next(iter(info.get("conditions", {}).values()), {}).get("n_examples", {})
        items.append(
            (
                f"{task}",
                f"seeds {', '.join(map(str, seeds)) or 'not recorded'}; examples "
                + ", ".join(f"{n} ({k})" for k, n in ex.items()),
            )
        )
    classifiers = set()
    for task in r.task_names:
        for c in r.tasks[task].get("conditions", {}).values():
            classifiers |= set(_classifier_names(c.get("classifier")))
    if classifiers:
        items.append(("pattern classifier", "; ".join(sorted(classifiers))))
    cfg = r.config
    items.append(
        (
            "statistics",
            f"{cfg.n_permutations} permutations, {cfg.n_bootstrap} bootstrap resamples, "
            f"{cfg.confidence_level:.0%} intervals, correction: {cfg.correction}, seed {cfg.seed}",
        )
    )
    if manifest:
        for key in ("command", "created", "git_commit"):
            if manifest.get(key):
                value = manifest[key]
                items.append((f"run {key}", " ".join(value) if isinstance(value, list) else str(value)))
        config = manifest.get("config")
        if isinstance(config, dict):
            items.append(
                (
                    "run config",
                    ", ".join(
                        f"{k}={v}"
                        for k, v in config.items()
                        if isinstance(v, (str, int, float, bool)) or v is None
                    ),
                )
            )
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    return f"<h2>Run</h2><table class='kv'>{body}</table>"


def _task_section(r: ComparisonResult, task: str, logs: list[PruningLog], figures: bool) -> str:
    info = r.tasks[task]
    out = [f"<h2 id='task-{_e(task)}'>Task: {_e(task)}</h2>"]
    out.append(_pruning_section(task, logs, figures))
    out.append(_survivors_section(info, figures))
    figs = {}
    if figures:
        from attnpatterns.plotting.compare import task_figures

        figs = task_figures(r, task)
    out.append("<h3>Pattern distributions</h3>")
    out.append(_distribution_table(r, task))
    for name in ("distribution", "intervals"):
        if name in figs:
            out.append(_img(figs.pop(name)))
    out.append(_tests_section(r, task))
    out.append(_correlation_section(r, task))
    grids = [n for n in list(figs) if n.startswith("majority_") or n.startswith("layers_")]
    if grids:
        out.append(
            "<h3>Per-head views</h3><p>Majority type of each head (ties go to the type listed first: "
            "vertical, diagonal, vertical+diagonal, block, heterogeneous); super-survivors are outlined. "
            "Layer and head ids are the model's original 0-based ids.</p>"
        )
        for name in sorted(grids, key=lambda n: (n.split("_", 1)[1], n)):
            out.append(_img(figs.pop(name)))
    return "\n".join(out)


def _pruning_section(task: str, logs: list[PruningLog], figures: bool) -> str:
    out = ["<h3>Pruning</h3>"]
    if not logs:
        out.append("<p class='muted'>No pruning log (pruning_log.json) was found for this task.</p>")
        return "\n".join(out)
    logs = sorted(logs, key=lambda log: (str(log.seed) if log.seed is not None else "~", log.source))
    # Super-survivors come from structured pruning; magnitude pruning and controls are listed apart.
    main = [log for log in logs if log.method in (None, "structured")]
    other = [log for log in logs if log.method not in (None, "structured")]
    readable = [log for log in main if not log.problem]
    if figures and readable:
        from attnpatterns.plotting.compare import plot_pruning_curves

        curves = {f"seed {log.seed}": [(s.step, s.score, s.passed) for s in log.steps] for log in readable}
        targets = {f"seed {log.seed}": log.target for log in readable}
        title = f"{task}: dev score per pruning step (dashed: score needed to keep a step; x: step not kept)"
        out.append(_img(plot_pruning_curves(curves, title=title, targets=targets).figure))
    out.append(_pruning_tables(main))
    if other:
        out.append("<p>Other pruning runs (magnitude pruning, controls):</p>")
        out.append(_pruning_tables(other))
    return "\n".join(out)


def _pruning_tables(logs: Iterable[PruningLog]) -> str:
    out = []
    for log in logs:
        label = f"seed {log.seed}" if log.seed is not None else "seed not recorded"
        if log.method not in (None, "structured"):
            label = f"{log.method}, {label}"
        if log.problem:
            out.append(
                f"<p class='warn'>{_e(label)}: could not read <code>{_e(log.source)}</code>: "
                f"{_e(log.problem)}.</p>"
            )
            continue
        frame = pd.DataFrame(
            [
                {
                    "step": s.step,
                    "phase": s.phase or "",
                    "heads left": _opt(s.heads_left),
                    "MLPs left": _opt(s.mlps_left),
                    f"dev score{f' ({log.metric})' if log.metric else ''}": _num(s.score, 4),
                    "kept": {True: "yes", False: "no", None: ""}[s.passed],
                }
                for s in log.steps
            ]
        )
        out.append(
            f"<details><summary>{_e(label)}: {len(log.steps)} steps, full model {_num(log.full_score, 4)}, "
            f"last kept step {_num(_last_score(log), 4)} (<code>{_e(log.source)}</code>)</summary>"
            f"{_table(frame)}</details>"
        )
    return "\n".join(out)


def _survivors_section(info: dict, figures: bool) -> str:
    surv = info.get("survivors", {})
    n_layers, n_heads = int(surv.get("n_layers", 0)), int(surv.get("n_heads", 0))
    heads = surv.get("super_survivor_heads", [])
    mlps = surv.get("super_survivor_mlps", [])
    seeds = surv.get("seeds") or []
    kappa = surv.get("fleiss_kappa_heads")
    out = ["<h3>Super-survivors</h3>"]
    text = (
        f"{len(heads)} of {n_layers * n_heads} heads were kept in every one of "
        f"{len(seeds) if seeds else 'the'} seeds"
    )
    text += f"; MLPs kept in every seed: {', '.join(map(str, mlps)) if mlps else 'none'}."
    if kappa is not None:
        text += (
            f" Fleiss' κ of the head masks across seeds = {_num(kappa, 3)} "
            "(1 = every seed keeps the same heads, 0 = agreement expected by chance)."
        )
    out.append(f"<p>{_e(text)}</p>")
    if heads:
        out.append("<p>Heads (layer, head): " + _e(", ".join(f"({a}, {b})" for a, b in heads)) + "</p>")
    freq = surv.get("head_survival_frequency")
    if figures and freq is not None:
        from attnpatterns.plotting.compare import plot_survival_frequency

        ax = plot_survival_frequency(
            np.asarray(freq, float),
            title="fraction of seeds in which each head survived (outlined: all seeds)",
        )
        out.append(_img(ax.figure))
    return "\n".join(out)


def _distribution_table(r: ComparisonResult, task: str) -> str:
    dist = r.distributions[r.distributions["task"] == task]
    if dist.empty:
        return "<p>No maps.</p>"
    rows = []
    for kind in [k for k in MAP_KINDS if k in set(dist["kind"])]:
        for cond in dict.fromkeys(dist.loc[dist["kind"] == kind, "condition"]):
            sub = dist[(dist["kind"] == kind) & (dist["condition"] == cond)].set_index("type")
            row = {
                "kind": kind,
                "condition": cond,
                "heads": int(sub["n_heads"].iloc[0]),
                "maps": int(sub["n_maps"].iloc[0]),
            }
            for t in PATTERN_TYPES:
                row[t] = _pct_ci(sub.loc[t]) if t in sub.index else "–"
            rows.append(row)
    return (
        "<p>Share of maps of each type, with 95% bootstrap intervals over heads in brackets.</p>"
        if r.config.confidence_level == 0.95
        else f"<p>Share of maps of each type, with {r.config.confidence_level:.0%} bootstrap intervals over "
        "heads.</p>"
    ) + _table(pd.DataFrame(rows))


def _tests_section(r: ComparisonResult, task: str) -> str:
    tests = r.tests[r.tests["task"] == task] if not r.tests.empty else r.tests
    out = ["<h3>Tests</h3>"]
    if tests.empty:
        out.append(
            "<p class='muted'>No test could be run (there must be super-survivors and other heads).</p>"
        )
        return "\n".join(out)
    for comp, (group_a, group_b, question) in COMPARISONS.items():
        sub = tests[tests["comparison"] == comp]
        if sub.empty:
            continue
        out.append(f"<h4>{_e(comp)}: {_e(question)}</h4>")
        out.append(f"<p class='muted'>A = {_e(group_a)}; B = {_e(group_b)}.</p>")
        rows = []
        significant: list[bool] = []  # per row: adj. p < 0.05, from the unrounded value (0.0497 shows as 0.050)
        skipped = 0
        for row in sub.itertuples(index=False):
            if row.test == "difference":
                if not _finite(row.p_value):  # no map, or every map, has this type: nothing to test
                    skipped += 1
                    continue
                what, a, b = row.type, _pct(row.prop_a), _pct(row.prop_b)
                est = f"{_pp(row.estimate)} [{_pp(row.ci_low)}, {_pp(row.ci_high)}]"
            elif row.test == "TVD":
                what, a, b, est = "all types: total variation distance", "", "", _num(row.estimate, 3)
            else:
                what, a, b = "majority type per head", "", ""
                est = (
                    f"{_majority_statistic_name(row.method)} {_num(row.estimate, 3)}"
                    if _finite(row.estimate)
                    else "–"
                )
            rows.append(
                {
                    "kind": row.kind,
                    "weights": row.weights,
                    "test": what,
                    "heads A / B": f"{int(row.n_heads_a)} / {int(row.n_heads_b)}",
                    "A": a,
                    "B": b,
                    "A − B [interval]": est,
                    "p": _p(row.p_value),
                    "adj. p": _p(row.p_adjusted),
                    "method": row.method,
                }
            )
            significant.append(_finite(row.p_adjusted) and float(row.p_adjusted) < 0.05)
        out.append(_table(pd.DataFrame(rows), highlight_col="adj. p", highlight=significant))
        if skipped:
            out.append(
                f"<p class='muted'>{skipped} row(s) left out: types found in no map (or in every map) of "
                "both groups, so there is nothing to test.</p>"
            )
    return "\n".join(out)


def _majority_statistic_name(method: str) -> str:
    if method.startswith("chi-square"):
        return "χ² ="
    if "2x2" in method:
        return "odds ratio ="
    return "table probability ="


def _correlation_section(r: ComparisonResult, task: str) -> str:
    corr = r.correlations[r.correlations["task"] == task] if not r.correlations.empty else r.correlations
    if corr.empty:
        return ""
    rows = [
        {
            "kind": c.kind,
            "weights": c.weights,
            "r": _num(c.r, 4),
            "p (heads permuted)": _p(c.p_value),
            "adj. p": _p(c.p_adjusted),
            "maps": int(c.n_maps),
            "heads": int(c.n_heads),
            "super-survivors": int(c.n_survivors),
        }
        for c in corr.itertuples(index=False)
    ]
    return (
        "<h3>Correlation: heterogeneous map vs surviving head</h3><p>Pearson's r (phi) over the full "
        "model's maps between &ldquo;the map is heterogeneous&rdquo; and &ldquo;its head is a "
        "super-survivor&rdquo;; the p-value permutes survival over heads. The paper reports "
        "r &asymp; 0.002.</p>" + _table(pd.DataFrame(rows))
    )


def _methods_section(r: ComparisonResult) -> str:
    cfg = r.config
    items = "".join(f"<li><b>{_e(k)}</b>: {v}</li>" for k, v in METHODS)
    text = _prose(f"""
        The head is the unit of every test and interval. Per-type differences in the pooled share of maps are
        tested with two-sided permutation tests ({cfg.n_permutations} random relabellings of heads, or every
        relabelling when there are fewer); the omnibus statistic is the total variation distance between the
        two type distributions (one-sided). Majority types per head are compared with Pearson's chi-square
        test, or Fisher's exact test (Fisher-Freeman-Halton with Monte Carlo p-values for more than two types)
        when an expected count is below 5. Intervals are BCa bootstrap intervals ({cfg.n_bootstrap} resamples
        of heads, their maps pooled; percentile intervals where BCa is undefined). P-values are adjusted with
        statsmodels' multipletests ({_e(cfg.correction)}) within each family of one comparison, weights
        condition and test, across tasks, map kinds and types.
    """)
    return f"<h2>Methods</h2><p>{text}</p><ul>{items}</ul>"


# ------------------------------------------------------------------------------------------------------------
# Lookups and formatting
# ------------------------------------------------------------------------------------------------------------


def _dist_row(r, task, kind, condition, type_):
    d = r.distributions
    sub = d[(d["task"] == task) & (d["kind"] == kind) & (d["condition"] == condition) & (d["type"] == type_)]
    return None if sub.empty else sub.iloc[0]


def _test_row(r, task, kind, weights, comparison, test, type_):
    t = r.tests
    if t.empty:
        return None
    sub = t[
        (t["task"] == task)
        & (t["kind"] == kind)
        & (t["weights"] == weights)
        & (t["comparison"] == comparison)
        & (t["test"] == test)
        & (t["type"] == type_)
    ]
    return None if sub.empty else sub.iloc[0]


def _corr_row(r, task, kind, weights):
    c = r.correlations
    if c.empty:
        return None
    sub = c[(c["task"] == task) & (c["kind"] == kind) & (c["weights"] == weights)]
    return None if sub.empty else sub.iloc[0]


def _classifier_names(info) -> list[str]:
    if not isinstance(info, dict):
        return [str(info)] if info else []
    per_kind = info if all(isinstance(v, dict) for v in info.values()) else {"": info}
    names = []
    for kind, rec in per_kind.items():
        label = Path(str(rec.get("path"))).name if rec.get("path") else "checkpoint"
        sha = rec.get("weights_sha256")
        names.append(f"{kind + ': ' if kind else ''}{label}" + (f" (sha256 {str(sha)[:12]})" if sha else ""))
    return names


def _last_score(log: PruningLog):
    scores = [s.score for s in log.steps if s.score is not None and s.passed is not False]
    return scores[-1] if scores else None


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _pct(x) -> str:
    return f"{float(x):.1%}" if _finite(x) else "–"


def _pct_ci(row) -> str:
    if not _finite(row["proportion"]):
        return "–"
    ci = f" [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}]" if _finite(row["ci_low"]) else ""
    return _pct(row["proportion"]) + ci


def _pp(x) -> str:
    return f"{100 * float(x):+.1f} pp" if _finite(x) else "–"


def _p(x) -> str:
    if not _finite(x):
        return "–"
    x = float(x)
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def _num(x, digits: int) -> str:
    return f"{float(x):.{digits}f}" if _finite(x) else "–"


def _opt(x) -> str:
    return "" if x is None else str(x)


def _e(text) -> str:
    return html.escape(str(text))


def _table(frame: pd.DataFrame, highlight_col: str | None = None, highlight: Sequence[bool] = ()) -> str:
    """An HTML table; ``highlight[i]`` marks row i's ``highlight_col`` cell as significant."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for col, value in zip(frame.columns, row):
            cls = " class='sig'" if col == highlight_col and i < len(highlight) and highlight[i] else ""
            cells.append(f"<td{cls}>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<div class='tw'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _img(fig) -> str:
    from attnpatterns.plotting.compare import figure_png_bytes

    data = base64.b64encode(figure_png_bytes(fig)).decode("ascii")
    return f"<figure><img alt='figure' src='data:image/png;base64,{data}'></figure>"


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="attnpatterns report">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px; margin: 2em
       auto; padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.7em; margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
margin-top: 2em; }} h4 {{ margin-bottom: 0.2em; }}
.meta, .muted {{ color: #666; font-size: 0.9em; }}
.howto {{ background: #f4f8fb; border-left: 4px solid #0072B2; padding: 0.3em 1em; }}
.howto h2 {{ border: none; margin-top: 0.5em; font-size: 1.1em; }}
.notes {{ background: #fff7e6; border-left: 4px solid #E69F00; padding: 0.3em 1em; margin-top: 1em; }}
.warn {{ color: #a33; }}
.tw {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }}
thead th {{ background: #f2f2f2; }} table.kv th {{ background: #f8f8f8; width: 14em; }}
td.sig {{ font-weight: bold; background: #fdeee6; }}
figure {{ margin: 0.8em 0; }} img {{ max-width: 100%; }}
details {{ margin: 0.3em 0; }} summary {{ cursor: pointer; }}
code {{ font-size: 0.9em; }}
</style></head><body>"""

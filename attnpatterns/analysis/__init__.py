"""Compare the attention patterns of super-survivor heads with the full model, and report on a run.

* :mod:`.tables`        load classification tables and survivors; refuse inputs that describe different
  models;
* :mod:`.distributions` per-head type counts, pooled distributions, majority types, distributions by layer;
* :mod:`.stats`         permutation tests and bootstrap intervals over heads, majority-type tests,
  correlation;
* :mod:`.compare`       the comparison of one or more tasks (:func:`compare`) and its saved form;
* :mod:`.runs`          find comparisons and pruning logs in a run folder;
* :mod:`.report`        the self-contained HTML report.

Typical use (what ``attnpatterns compare`` and ``attnpatterns report`` do)::

    from attnpatterns.analysis import TaskInputs, compare, load_pattern_table, load_survivors, save_comparison
    inputs = TaskInputs("sst2", load_survivors(surv_dir), load_pattern_table(full_dir),
                        survivors_table=load_pattern_table(pruned_dir))
    result = compare([inputs])
    save_comparison(result, out_dir)
    html = build_report(result, pruning_logs=find_pruning_logs(run_dir, result.task_names))
"""

from attnpatterns.analysis.compare import (
    CompareConfig,
    ComparisonResult,
    TaskInputs,
    check_task_inputs,
    compare,
    merge_results,
    save_comparison,
)
from attnpatterns.analysis.report import build_report, collect_run, report_from_run
from attnpatterns.analysis.runs import PruningLog, find_pruning_logs, load_pruning_log
from attnpatterns.analysis.tables import (
    AnalysisInputError,
    PatternTable,
    Survivors,
    load_pattern_table,
    load_survivors,
)

__all__ = [
    "AnalysisInputError",
    "CompareConfig",
    "ComparisonResult",
    "PatternTable",
    "PruningLog",
    "Survivors",
    "TaskInputs",
    "build_report",
    "check_task_inputs",
    "collect_run",
    "compare",
    "find_pruning_logs",
    "load_pattern_table",
    "load_pruning_log",
    "load_survivors",
    "merge_results",
    "report_from_run",
    "save_comparison",
]

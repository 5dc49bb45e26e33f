"""`compare` with layer-level kinds: rows under head -1 are accepted, and only the paired tests (by layer) run."""

from __future__ import annotations

import pandas as pd
import pytest

from attnpatterns.analysis.compare import CompareConfig, TaskInputs, compare
from attnpatterns.analysis.tables import AnalysisInputError, PatternTable
from attnpatterns.constants import LAYER_HEAD
from tests.analysis.builders import (
    N_LAYERS,
    SURVIVORS,
    classify_manifest,
    make_survivors,
    survivor_mask,
    table_frame,
)

LAYERS = [(layer, LAYER_HEAD) for layer in range(N_LAYERS)]


def _table(frame: pd.DataFrame, **manifest) -> PatternTable:
    return PatternTable.from_frame(frame, classify_manifest(**manifest), source="constructed")


def test_compare_accepts_layer_kinds_and_runs_only_paired_tests():
    full = _table(pd.concat([table_frame("vertical", kinds=("raw",)),
                             table_frame("diagonal", heads=LAYERS, kinds=("rollout",))]), model="m")
    pruned = _table(pd.concat([table_frame("vertical", heads=SURVIVORS, kinds=("raw",)),
                               table_frame("vertical", heads=LAYERS, kinds=("rollout",))]),
                    model="m", head_mask=survivor_mask())
    config = CompareConfig(n_permutations=999, n_bootstrap=200, kinds=("raw", "rollout"))
    result = compare([TaskInputs("toy", make_survivors(), full, survivors_table=pruned)], config)
    tests = result.tests[result.tests["kind"] == "rollout"]
    assert set(tests["comparison"]) == {"pruning_effect"}
    tvd = tests[(tests["test"] == "TVD") & (tests["type"] == "all")].iloc[0]
    assert tvd.estimate == pytest.approx(1.0)  # every layer diagonal in the full model, vertical when pruned
    assert set(result.distributions["kind"]) == {"raw", "rollout"}
    assert any("rollout maps are one per layer" in n for n in result.notes)


def test_layer_kind_rows_need_head_minus_one():
    frame = table_frame("vertical", heads=[(0, 0)], kinds=("rollout",))
    with pytest.raises(AnalysisInputError, match="must have head -1"):
        _table(frame)

"""lm-eval's results table shows the ECE with a stderr (not N/A) for the calib tasks.

Runs lm-eval's own aggregation (``evaluator_utils._compute_task_aggregations``) and table
(``utils.make_table``) on the real calib_arc_easy task, fed by its real ``process_results``
on the responses SmolLM2 gave in the logged lm-eval fixture: no model call needed.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from calib_harness import metrics as M
from calib_harness.capture.payload import ECE_BINS, ECE_STDERR_BOOT, ECE_STDERR_METRIC, PAYLOAD_METRIC
from calib_harness.data_sources import DATA_DIR_ENV


@pytest.fixture(scope="module")
def arc_task(shared_data):
    import os

    from lm_eval.tasks import TaskManager, get_task_dict

    from calib_harness.tasks import TASKS_DIR

    old = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(shared_data)
    try:
        return get_task_dict(["calib_arc_easy"], TaskManager(include_path=str(TASKS_DIR)))["calib_arc_easy"]
    finally:
        if old is None:
            os.environ.pop(DATA_DIR_ENV)
        else:
            os.environ[DATA_DIR_ENV] = old


def test_ece_stderr_fills_lm_eval_table(arc_task, fixtures_dir):
    from lm_eval.evaluator_utils import _compute_task_aggregations
    from lm_eval.utils import make_table

    path = next((fixtures_dir / "records" / "lm_eval_arc_easy_smollm2").glob("*/samples_calib_arc_easy_*.jsonl"))
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    raw: dict = defaultdict(list)
    for s in samples:
        resps = [(float(ll), is_greedy == "True") for ll, is_greedy in s["filtered_resps"]]
        out = arc_task.process_results(s["doc"], resps)
        keys = list(out)
        # the stderr metric comes after the payload, so lm-eval keeps its value and not "N/A"
        assert keys.index(ECE_STDERR_METRIC) > keys.index(PAYLOAD_METRIC)
        for metric, value in out.items():
            raw[(metric, "none")].append(value)
    agg, n = _compute_task_aggregations(arc_task, dict(raw), bootstrap_iters=1000)
    conf = np.array([v["confidence"] for v in raw[(PAYLOAD_METRIC, "none")]])
    score = np.array([v["score"] for v in raw[(PAYLOAD_METRIC, "none")]])
    assert n == len(samples) >= 20
    assert agg["ece,none"] == pytest.approx(M.ece(conf, score, ECE_BINS))
    se = agg["ece_stderr,none"]
    assert isinstance(se, float) and 0 < se < 0.5
    assert se == pytest.approx(M.ece_stderr(conf, score, ECE_BINS, n_boot=ECE_STDERR_BOOT, seed=0))

    table = make_table({"results": {"calib_arc_easy": {**agg, "alias": "calib_arc_easy"}},
                        "versions": {"calib_arc_easy": 1}, "n-shot": {"calib_arc_easy": 0},
                        "higher_is_better": {"calib_arc_easy": arc_task.higher_is_better()}})
    ece_rows = [line for line in table.splitlines() if "|ece " in line.replace("|ece|", "|ece |")]
    assert len(ece_rows) == 1, table  # the stderr metric is no row of its own
    assert "N/A" not in ece_rows[0] and f"{se:.4f}" in ece_rows[0]

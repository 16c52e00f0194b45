"""Label-error cleaning with calibrated experts (Hao et al. 2026, section 2.3, Algorithm 2).

Modules (one job each):

* :mod:`.base`: the :class:`CleaningMethod` protocol, :class:`MethodResult` (cleanlab-shaped: mask,
  ranked indices, a DataFrame) and the registry (``@register_cleaning_method``,
  :func:`get_cleaning_method`, :func:`list_cleaning_methods`);
* :mod:`.methods`: methods 1-3 of Algorithm 2 on arrays (top-1 disagreement, high-confidence
  disagreement over top-K accuracy bins, class thresholds);
* :mod:`.confident_learning`: ``cleanlab.filter.find_label_issues`` on the same probabilities;
* :mod:`.experts`: align, split, calibrate and bin the experts' runs (:class:`ExpertPanel`);
* :mod:`.pipeline`: every method on a panel (:func:`run_methods`);
* :mod:`.reference`: MMLU-Redux, MTurk (cleanlab label-errors) and pseudo-label references;
* :mod:`.evaluate`: precision / detection rate per method and K;
* :mod:`.report`: ranked CSV/JSONL for human verification, overlap between methods;
* :mod:`.plots`: precision vs detection rate (Figure 6);
* :mod:`.reevaluate`: accuracy and cascade on the cleaned set (Table 2).

Typical use::

    panel = build_panel([run_a, run_b])            # temperature scaling, 15 bins, cross-fitted halves
    outcome = run_methods(panel)                   # M1, M2 (K sweep), M3, CL
    rows = evaluate.evaluate(outcome, reference.mmlu_redux_reference(data_dir))
"""

from calib_harness.cleaning.base import (
    CleaningMethod,
    MethodResult,
    get_cleaning_method,
    list_cleaning_methods,
    register_cleaning_method,
)
from calib_harness.cleaning.evaluate import EvalRow
from calib_harness.cleaning.experts import ExpertPanel, build_panel
from calib_harness.cleaning.pipeline import CleaningOutcome, run_methods

__all__ = [
    "build_panel",
    "ExpertPanel",
    "run_methods",
    "CleaningOutcome",
    "MethodResult",
    "EvalRow",
    "CleaningMethod",
    "register_cleaning_method",
    "get_cleaning_method",
    "list_cleaning_methods",
]

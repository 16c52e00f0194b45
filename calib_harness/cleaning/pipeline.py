"""Run cleaning methods (from the registry) on an :class:`ExpertPanel` and keep the per-sample evidence.

Method names used in tables, files and plots:

* ``M1 top-1``: method 1; ``M1 top-1 +agree``: the experts also predict the same label;
* ``M2 K=<k>`` / ``M2 +agree K=<k>``: method 2 at each K (K = 1 .. number of bins);
* ``M3 class-threshold (<combine>)``: method 3, experts combined by ``all``/``any``/``mean``;
* ``CL <filter_by>``: Confident Learning on the experts' mean calibrated probabilities.

Records with a confidence and no option scores run the methods that need only each expert's
prediction and confidence; :attr:`CleaningOutcome.skipped` names the others and why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from calib_harness.cleaning.base import MethodNotApplicable, MethodResult, get_cleaning_method, list_cleaning_methods
from calib_harness.cleaning.confident_learning import CLResult
from calib_harness.cleaning.experts import ExpertPanel
from calib_harness.cleaning.methods import min_k

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

logger = logging.getLogger(__name__)

#: The built-in methods, in report order (every registered method can be asked for by name).
METHODS = ("top1", "high-confidence", "class-threshold", "confident-learning")

__all__ = ["METHODS", "MethodResult", "CleaningOutcome", "run_methods", "option_score_note"]


@dataclass
class CleaningOutcome:
    """All results on one panel, plus the per-sample numbers the report needs."""

    panel: ExpertPanel
    results: list[MethodResult]
    min_k: np.ndarray  # (n,) smallest K of method 2 (inf = never)
    min_k_agree: np.ndarray
    agreed: np.ndarray  # (n,) label all experts predict, -1 otherwise
    score: np.ndarray  # (n,) ranking score: mean expert confidence in its own (disagreeing) answer
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it did not run

    @property
    def y_star(self) -> np.ndarray:
        """Method 3's Y* per expert (m', n), -1 = no candidate; empty when method 3 did not run."""
        for r in self.results:
            if "y_star" in r.evidence:
                return r.evidence["y_star"]
        return np.full((0, self.panel.n), -1)

    @property
    def cl(self) -> list[CLResult]:
        return [r.evidence["cl"] for r in self.results if "cl" in r.evidence]

    def result(self, name: str) -> MethodResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no result {name!r}; have {[r.name for r in self.results]}")

    def union_flags(self) -> np.ndarray:
        out = np.zeros(self.panel.n, dtype=bool)
        for r in self.results:
            out |= r.flags
        return out

    def summary_rows(self) -> list[dict]:
        n = self.panel.n
        return [
            {"method": r.name, "filter_by": r.filter_by, "n_flagged": r.n_flagged,
             "flag_rate": r.n_flagged / n if n else float("nan"), **r.params}
            for r in self.results
        ]

    def to_frame(self, reference=None) -> "pd.DataFrame":
        """The ranked flagged samples as a DataFrame (what ``flagged.csv`` holds)."""
        import pandas as pd

        from calib_harness.cleaning.report import flagged_rows

        return pd.DataFrame(flagged_rows(self, reference))


def option_score_note(skipped: Mapping[str, str]) -> str:
    """The one line naming the methods that could not run for lack of option scores (and any
    skipped for another reason)."""
    lacking = [m for m, why in skipped.items() if why == "needs option scores"]
    others = "; ".join(f"{m} skipped: {why}" for m, why in skipped.items() if why != "needs option scores")
    if not lacking:
        return others
    return (f"methods {', '.join(lacking)} need option scores (multiple-choice or vision records with per-option "
            "log-likelihoods or logits); these records carry a prediction and a confidence only, so they were skipped"
            + (f"; {others}" if others else ""))


def _builtin_params(name: str, ks, require_agreement, combine, filter_by) -> dict[str, Any]:
    if name == "top1":
        return {"require_agreement": require_agreement}
    if name == "high-confidence":
        return {"ks": ks, "require_agreement": require_agreement}
    if name == "class-threshold":
        return {"combine": combine}
    if name == "confident-learning":
        return {"filter_by": tuple(filter_by)}
    return {}


def run_methods(
    panel: ExpertPanel,
    *,
    methods: Sequence[str] = METHODS,
    ks: Sequence[int] | None = None,
    require_agreement: bool | None = None,
    combine: str = "all",
    filter_by: Sequence[str] = ("prune_by_noise_rate",),
    params: Mapping[str, Mapping[str, Any]] | None = None,
    strict: bool = False,
) -> CleaningOutcome:
    """Apply the registered ``methods``; ``require_agreement=None`` reports both variants of
    methods 1 and 2.

    ``params`` maps a method name to its constructor arguments (they override the keyword
    shortcuts).  On a panel without option scores the methods that need them are skipped
    (named in ``outcome.skipped``), unless ``strict``: then they raise.  Nothing runnable
    at all raises too.
    """
    known = list_cleaning_methods()
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {known}")
    results: list[MethodResult] = []
    skipped: dict[str, str] = {}
    other: dict[str, str] = {}  # methods that cannot run on these samples for another reason
    for name in dict.fromkeys(methods):
        cls = get_cleaning_method(name)
        if cls.needs_option_scores and not panel.has_option_scores:
            skipped[name] = "needs option scores"
            continue
        kwargs = {**_builtin_params(name, ks, require_agreement, combine, filter_by), **dict((params or {}).get(name, {}))}
        try:
            results.extend(cls(**kwargs).find_label_issues(panel))
        except MethodNotApplicable as e:
            other[name] = str(e)
            logger.warning("cleaning method %s skipped: %s", name, e)
    if skipped:
        note = option_score_note(skipped)
        if strict or not results:
            raise ValueError(note.replace("were skipped", "cannot run") +
                             f"; run {list_cleaning_methods(needs_option_scores=False)} instead")
        logger.warning(note)
    pred, given = panel.pred, panel.given
    mk = min_k(pred, given, panel.ranks, False)
    mka = min_k(pred, given, panel.ranks, True)
    if not results:
        raise ValueError(f"no cleaning method could run: {other}")
    score = 1.0 - panel.disagreement_quality()
    return CleaningOutcome(panel, results, mk, mka, panel.agreed(), score, {**skipped, **other})

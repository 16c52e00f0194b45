"""One protocol for cleaning methods, their registry, and the shape of their results.

A cleaning method is one class plus one registration, in the style of lm-eval's
``register_*`` decorators::

    from calib_harness.cleaning.base import CleaningMethod, MethodResult, register_cleaning_method

    @register_cleaning_method("my-method")
    class MyMethod(CleaningMethod):
        needs_option_scores = False        # True: needs each expert's class probabilities

        def find_label_issues(self, panel):
            flags = (panel.pred != panel.given[None, :]).all(axis=0)
            return [self.result("my-method", flags, panel)]

``find_label_issues(panel)`` takes an :class:`~calib_harness.cleaning.experts.ExpertPanel`
(the experts' calibrated predictions, confidences, accuracy-ranked bins and, where the
records carry option scores, class probabilities) and returns one :class:`MethodResult` per
setting (method 2 returns one per K).  Results are shaped like cleanlab's
``find_label_issues``: a boolean mask (``flags``), the flagged indices ranked most likely
error first (:meth:`MethodResult.ranked`), a per-sample ``label_quality`` (lower = more likely
an error, like cleanlab's label quality scores), the variant recorded as ``filter_by``, and a
:class:`pandas.DataFrame` a person can read (:meth:`MethodResult.to_frame`).

Methods registered here (:func:`list_cleaning_methods`):

* ``top1`` -- Algorithm 2 method 1 (prediction + confidence suffice);
* ``high-confidence`` -- method 2, one result per K (prediction + confidence suffice);
* ``class-threshold`` -- method 3 (needs option scores);
* ``confident-learning`` -- cleanlab's ``find_label_issues`` (needs option scores).
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from calib_harness.cleaning.experts import ExpertPanel

logger = logging.getLogger(__name__)

#: Modules holding the built-in methods; imported on first registry lookup (lazy, like lm-eval).
BUILTIN_MODULES = ("calib_harness.cleaning.methods", "calib_harness.cleaning.confident_learning")
#: Report order of the built-in methods (others follow in registration order).
BUILTIN_ORDER = ("top1", "high-confidence", "class-threshold", "confident-learning")

_REGISTRY: dict[str, type["CleaningMethod"]] = {}


class MethodNotApplicable(ValueError):
    """A method cannot run on this panel (e.g. one class only); ``run_methods`` skips it and says why."""


@dataclass
class MethodResult:
    """One method at one setting (cleanlab's ``find_label_issues`` shape).

    Attributes:
        name: display name used in tables, files and plots (``"M2 +agree K=3"``).
        method: the registry name (``"high-confidence"``).
        flags: ``(n,)`` bool mask over the panel's samples (cleanlab's default return).
        params: the setting (``{"K": 3, "require_agreement": True}``).
        filter_by: the variant, recorded with the result as cleanlab records ``filter_by``.
        label_quality: ``(n,)`` in [0, 1]; lower = more likely a label error.  It orders
            :meth:`ranked`.
        evidence: per-sample arrays a method wants to keep (method 3's ``Y*``, CL's probabilities).
    """

    name: str
    method: str
    flags: np.ndarray
    params: dict = field(default_factory=dict)
    filter_by: str = ""
    label_quality: np.ndarray | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.flags = np.asarray(self.flags, dtype=bool)
        if not self.filter_by:
            self.filter_by = self.name

    @property
    def n_flagged(self) -> int:
        return int(self.flags.sum())

    def ranked(self) -> np.ndarray:
        """Indices of the flagged samples, most likely error first (cleanlab's
        ``return_indices_ranked_by``); ties keep the panel order."""
        idx = np.flatnonzero(self.flags)
        if self.label_quality is None:
            return idx
        return idx[np.argsort(self.label_quality[idx], kind="stable")]

    def to_frame(self, panel: "ExpertPanel") -> "pd.DataFrame":
        """Every sample: task, doc_id, is_label_issue, label_quality, given and predicted label."""
        import pandas as pd

        agreed = panel.agreed()
        n = panel.n
        quality = self.label_quality if self.label_quality is not None else np.full(n, np.nan)
        return pd.DataFrame(
            {
                "task": [k[0] for k in panel.keys],
                "doc_id": [k[1] for k in panel.keys],
                "is_label_issue": self.flags,
                "label_quality": quality,
                "given_label": [panel.label_name(i, int(panel.given[i])) for i in range(n)],
                "predicted_label": [
                    panel.label_name(i, int(agreed[i] if agreed[i] >= 0 else panel.pred[0, i])) for i in range(n)
                ],
                "method": self.name,
                "filter_by": self.filter_by,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-sample arrays)."""
        return {"method": self.name, "family": self.method, "filter_by": self.filter_by, "n_flagged": self.n_flagged,
                **self.params}


class CleaningMethod(ABC):
    """The protocol every cleaning method follows.

    Class attributes:
        name: the registry name (set by :func:`register_cleaning_method`).
        needs_option_scores: True when the method needs each expert's class probabilities
            (records with option scores: multiple choice, vision); False when each expert's
            prediction and confidence suffice (any record, including generation logs and
            plain tables).
        summary: one line for ``--help`` and reports.
    """

    name: ClassVar[str] = ""
    needs_option_scores: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    @abstractmethod
    def find_label_issues(self, panel: "ExpertPanel") -> list[MethodResult]:
        """One :class:`MethodResult` per setting of this method on ``panel``."""

    def result(self, display: str, flags, panel: "ExpertPanel", params: dict | None = None,
               filter_by: str = "", label_quality=None, **evidence: Any) -> MethodResult:
        """A :class:`MethodResult` of this method; ``label_quality`` defaults to
        :meth:`ExpertPanel.disagreement_quality`."""
        q = panel.disagreement_quality() if label_quality is None else np.asarray(label_quality, dtype=np.float64)
        return MethodResult(display, self.name, np.asarray(flags, dtype=bool), dict(params or {}),
                            filter_by or display, q, dict(evidence))

    def check_panel(self, panel: "ExpertPanel") -> None:
        if self.needs_option_scores and not panel.has_option_scores:
            raise ValueError(
                f"cleaning method {self.name!r} needs option scores (multiple-choice or vision records); "
                "these records carry a prediction and a confidence only"
            )


def register_cleaning_method(name: str) -> Callable[[type[CleaningMethod]], type[CleaningMethod]]:
    """Class decorator: make a :class:`CleaningMethod` available as ``name``."""

    def deco(cls: type[CleaningMethod]) -> type[CleaningMethod]:
        if not (isinstance(cls, type) and issubclass(cls, CleaningMethod)):
            raise TypeError(f"{cls!r} is not a CleaningMethod subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"cleaning method {name!r} is already registered ({_REGISTRY[name].__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def get_cleaning_method(name: str) -> type[CleaningMethod]:
    """The registered class called ``name``."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown cleaning method {name!r}; choose from {list_cleaning_methods()}") from None


def list_cleaning_methods(needs_option_scores: bool | None = None) -> list[str]:
    """Registered names (built-ins first, in report order); ``needs_option_scores`` filters by requirement."""
    _load_builtins()
    names = [n for n in BUILTIN_ORDER if n in _REGISTRY] + [n for n in _REGISTRY if n not in BUILTIN_ORDER]
    return [n for n in names if needs_option_scores is None or _REGISTRY[n].needs_option_scores == needs_option_scores]

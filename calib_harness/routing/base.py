"""The router protocol and registry: every cascade router is one class plus one registration.

Protocol (scikit-learn style, :class:`Router`):

* ``fit(calib) -> self``: fit on the calibration half (a :class:`RoutingData`);
* ``score(data) -> np.ndarray``: one number per input, **higher = more reason to defer to the
  larger (stronger) model**;
* ``route(data, share) -> np.ndarray`` (bool): ``True`` where the input goes to the larger model.
  ``share`` is the target fraction sent to the larger model; the cut is the ``1 - share``
  quantile of the scores on the calibration half (kept at ``fit``), so a fitted router routes
  new inputs one at a time, without looking at the rest of the test set.  Inputs whose score
  equals the cut go to the larger model;
* ``curve(data) -> RoutingCurve``: accuracy against the share kept on the smaller model on
  labelled data, one operating point per distinct score (routers with a natural knob, such as
  the K of Algorithm 1, override it);
* an unfitted router raises scikit-learn's :class:`~sklearn.exceptions.NotFittedError`.

Subclasses implement ``_fit(calib)`` and ``score(data)``; ``fit`` calls ``_fit``, marks the
router fitted (``fitted_``) and stores the calibration scores (``calib_scores_``); every
``score`` is wrapped so that it raises ``NotFittedError`` before ``fit``.  Constructor arguments follow scikit-learn's rules
(stored under their own names), so ``sklearn.base.clone`` and ``get_params`` work.

Registry (lm-eval style, ``register_model`` / ``get_model``)::

    @register_router("CC")
    class CalibratedConfidenceRouter(Router):
        plot_style = {"color": "tab:red", "lw": 2.2}
        ...

    get_router("cc")        # the class (names are case-insensitive)
    list_routers()          # ["CC", "UC", "threshold", "random", "oracle", "MF", ...]
    make_router("cc", n_bins=15, seed=0, progress=False)  # instance; drops options it does not take

Built-in routers live in the modules of :data:`ROUTER_MODULES`, imported on the first registry
call; routers whose module is heavy (torch) are listed in :data:`LAZY_ROUTERS` as
``"module:Class"`` and imported only when asked for, as lm-eval's model registry does.  A new
router in a new module adds its module to :data:`ROUTER_MODULES` (or a lazy entry); the CLI,
``compare_routers``, the tables and the plots pick it up from the registry.

Class attributes a router declares:

* ``plot_style``: matplotlib keyword arguments of its curve;
* ``binned``: it has an ``n_bins`` parameter (the "APGR by number of bins" table sweeps it);
* ``needs_prompts``: it reads the prompt text (``RoutingData.embeddings``);
* ``uses_test_labels``: an upper bound that reads the labels of the data it routes (oracle),
  never deployable;
* ``expected``: its curve is an expectation, not one realisation (random);
* ``order``: position in :func:`list_routers`, tables and plots (default 50).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from calib_harness.routing.curves import RoutingCurve, curve_from_priority

logger = logging.getLogger(__name__)

__all__ = [
    "NotFittedError",
    "Router",
    "RoutingData",
    "register_router",
    "get_router",
    "list_routers",
    "make_router",
    "router_style",
    "ROUTER_MODULES",
    "LAZY_ROUTERS",
]


# -- data ---------------------------------------------------------------------------------


@dataclass
class RoutingData:
    """The two models' outputs on the same inputs, in the same order (small = weaker/cheaper).

    Arrays are what every router reads; ``small_run`` / ``large_run`` (the aligned records) are
    there for routers that calibrate on option scores or features, ``prompts`` and
    ``embedding_cache`` for routers that read the prompt (MF).  Build it with
    :meth:`from_runs` or :meth:`from_arrays`.
    """

    small_confidence: np.ndarray
    large_confidence: np.ndarray
    small_scores: np.ndarray
    large_scores: np.ndarray
    prompts: list[str] | None = None
    small_run: Any = None
    large_run: Any = None
    small_model: str = "small"
    large_model: str = "large"
    embedding_cache: Path | None = None
    progress: bool = False
    _embeddings: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("small_confidence", "large_confidence", "small_scores", "large_scores"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).ravel())
        n = self.small_confidence.size
        if not (self.large_confidence.size == self.small_scores.size == self.large_scores.size == n):
            raise ValueError("small/large confidences and scores must all have one length")
        if self.prompts is not None and len(self.prompts) != n:
            raise ValueError(f"{len(self.prompts)} prompts for {n} inputs")

    @classmethod
    def from_runs(cls, small, large, embedding_cache: str | Path | None = None, progress: bool = False) -> "RoutingData":
        """From two aligned :class:`~calib_harness.records.Run` objects (same docs, same order)."""
        if small.keys != large.keys:
            raise ValueError("runs are not aligned; call calib_harness.records.align(small, large) first")
        prompts = [r.prompt for r in small.records]

        def conf(run):  # runs without confidence (stock generation logs): NaN; confidence routers refuse them
            return run.confidences() if getattr(run, "has_confidence", True) else np.full(len(run), np.nan)

        return cls(
            conf(small),
            conf(large),
            small.scores(),
            large.scores(),
            prompts=None if any(p is None for p in prompts) else list(prompts),
            small_run=small,
            large_run=large,
            small_model=small.model,
            large_model=large.model,
            embedding_cache=Path(embedding_cache) if embedding_cache else None,
            progress=progress,
        )

    @classmethod
    def from_arrays(cls, small_confidence, large_confidence, small_scores, large_scores, prompts=None, **kw) -> "RoutingData":
        return cls(small_confidence, large_confidence, small_scores, large_scores, prompts=prompts, **kw)

    def __len__(self) -> int:
        return int(self.small_confidence.size)

    @property
    def p_small(self) -> float:
        return float(self.small_scores.mean())

    @property
    def p_large(self) -> float:
        return float(self.large_scores.mean())

    def subset(self, index) -> "RoutingData":
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return replace(
            self,
            small_confidence=self.small_confidence[idx],
            large_confidence=self.large_confidence[idx],
            small_scores=self.small_scores[idx],
            large_scores=self.large_scores[idx],
            prompts=None if self.prompts is None else [self.prompts[int(i)] for i in idx],
            small_run=None if self.small_run is None else self.small_run.subset(idx),
            large_run=None if self.large_run is None else self.large_run.subset(idx),
            _embeddings=None if self._embeddings is None else self._embeddings[idx],
        )

    def swapped(self) -> "RoutingData":
        """The same data with the two models' roles exchanged."""
        return replace(
            self,
            small_confidence=self.large_confidence,
            large_confidence=self.small_confidence,
            small_scores=self.large_scores,
            large_scores=self.small_scores,
            small_run=self.large_run,
            large_run=self.small_run,
            small_model=self.large_model,
            large_model=self.small_model,
        )

    def embeddings(self) -> np.ndarray:
        """Unit-norm MiniLM prompt embeddings (computed once, cached under ``embedding_cache``)."""
        if self._embeddings is None:
            if self.prompts is None:
                raise ValueError("this router reads the prompts, and these records carry none (record.prompt is empty)")
            from calib_harness.routing.embeddings import embed_texts

            self._embeddings = embed_texts(self.prompts, cache_dir=self.embedding_cache, progress=self.progress)
        return self._embeddings


# -- protocol -----------------------------------------------------------------------------


class Router(BaseEstimator, ABC):
    """Base class of every cascade router (see the module docstring for the protocol)."""

    #: registered name (set by :func:`register_router`)
    name: ClassVar[str] = ""
    plot_style: ClassVar[dict[str, Any]] = {}
    binned: ClassVar[bool] = False
    needs_prompts: ClassVar[bool] = False
    uses_test_labels: ClassVar[bool] = False
    expected: ClassVar[bool] = False
    #: position in tables and plots (lower first; ties: registration order)
    order: ClassVar[int] = 50

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("score")
        if own is not None and not getattr(own, "__isabstractmethod__", False) and not getattr(own, "_checks_fitted", False):

            @functools.wraps(own)
            def score(self, data, *a, **kw):
                check_is_fitted(self, "fitted_")
                return own(self, data, *a, **kw)

            score._checks_fitted = True  # type: ignore[attr-defined]
            cls.score = score  # type: ignore[method-assign]

    def fit(self, calib: RoutingData) -> "Router":
        """Fit on the calibration half; keeps its scores for :meth:`route`'s share cut."""
        if len(calib) == 0:
            raise ValueError(f"{self.name}: cannot fit on an empty calibration half")
        for attr in ("fitted_", "calib_scores_"):
            self.__dict__.pop(attr, None)
        self._fit(calib)
        self.fitted_ = True
        self.calib_scores_ = np.asarray(self.score(calib), dtype=np.float64)
        return self

    @abstractmethod
    def _fit(self, calib: RoutingData) -> None:
        """Learn from the calibration half (set fitted attributes, names ending in ``_``)."""

    @abstractmethod
    def score(self, data: RoutingData) -> np.ndarray:
        """One number per input; higher = more reason to defer to the larger model."""

    def _check(self) -> None:
        check_is_fitted(self, "calib_scores_")

    def threshold_for_share(self, share: float) -> float:
        """Score cut that sends ``share`` of the calibration half to the larger model."""
        self._check()
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        if share <= 0.0:
            return float("inf")
        if share >= 1.0:
            return float("-inf")
        return float(np.quantile(self.calib_scores_, 1.0 - share, method="higher"))

    def route(self, data: RoutingData, share: float) -> np.ndarray:
        """``True`` where the input goes to the larger model (``share`` of the calibration half
        would; see the module docstring)."""
        thr = self.threshold_for_share(share)
        return np.asarray(self.score(data), dtype=np.float64) >= thr

    def curve(self, data: RoutingData) -> RoutingCurve:
        """Every threshold on this router's score: accuracy vs share kept on the small model."""
        self._check()
        return curve_from_priority(self.name, -np.asarray(self.score(data), dtype=np.float64), data.small_scores, data.large_scores)

    def info(self) -> dict[str, Any]:
        """Plain-number description of the fitted router (for comparison.json)."""
        return {k: v for k, v in self.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))}


# -- registry -----------------------------------------------------------------------------

#: modules whose import registers the built-in routers (light: no torch)
ROUTER_MODULES: list[str] = [
    "calib_harness.routing.calibrated",
    "calib_harness.routing.advantage",
    "calib_harness.routing.baselines",
    "calib_harness.routing.hybrid",
]
#: routers imported only when asked for: registered name -> "module:Class"
LAZY_ROUTERS: dict[str, str] = {
    "MF": "calib_harness.routing.mf:MFCascadeRouter",
}

_REGISTRY: dict[str, type[Router]] = {}
_NAMES: dict[str, str] = {}  # lower-case -> registered spelling, in registration order
_loaded = False


def register_router(name: str):
    """Class decorator: register a :class:`Router` subclass under ``name`` (case-insensitive)."""

    def deco(cls: type[Router]) -> type[Router]:
        if not (isinstance(cls, type) and issubclass(cls, Router)):
            raise TypeError(f"@register_router({name!r}) needs a Router subclass, got {cls!r}")
        key = name.lower()
        old = _REGISTRY.get(key)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"router name {name!r} is already taken by {old.__module__}.{old.__qualname__}")
        cls.name = name
        _REGISTRY[key] = cls
        _NAMES.setdefault(key, name)
        return cls

    return deco


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in ROUTER_MODULES:
        importlib.import_module(mod)
    for name in LAZY_ROUTERS:
        _NAMES.setdefault(name.lower(), name)


def list_routers() -> list[str]:
    """Registered router names (built-ins first, then lazy ones, then later registrations)."""
    _load_builtins()
    lazy = {k.lower() for k in LAZY_ROUTERS}
    names = list(_NAMES)

    def key(k: str) -> tuple[int, int]:
        cls = _REGISTRY.get(k)
        order = cls.order if cls is not None else (30 if k in lazy else 50)
        return order, names.index(k)

    return [_NAMES[k] for k in sorted(names, key=key)]


def get_router(name: str) -> type[Router]:
    """The router class registered under ``name`` (case-insensitive)."""
    _load_builtins()
    key = str(name).lower()
    if key not in _REGISTRY:
        lazy = {k.lower(): v for k, v in LAZY_ROUTERS.items()}
        if key in lazy:
            mod, _, cls_name = lazy[key].partition(":")
            cls = getattr(importlib.import_module(mod), cls_name)
            _REGISTRY.setdefault(key, cls)
        else:
            raise ValueError(f"unknown router {name!r}; choose from {', '.join(list_routers())}")
    return _REGISTRY[key]


def canonical_name(name: str) -> str:
    """The registered spelling of ``name`` (``"cc"`` -> ``"CC"``); ValueError when unknown."""
    _load_builtins()
    key = str(name).lower()
    if key not in _NAMES:
        raise ValueError(f"unknown router {name!r}; choose from {', '.join(list_routers())}")
    return _NAMES[key]


def make_router(name: str, **options: Any) -> Router:
    """An instance of router ``name``; options its constructor does not take are dropped, so
    shared settings (``n_bins``, ``seed``, ``progress``) can be passed to every router."""
    cls = get_router(name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in options.items() if k in accepted})


def router_style(name: str) -> dict[str, Any]:
    """The plot style a router declares (empty for unknown names)."""
    try:
        return dict(get_router(name).plot_style)
    except (ValueError, ImportError):
        return {}


def routers_with(names: Sequence[str], **flags: bool) -> list[str]:
    """The names among ``names`` whose class has every given flag set as asked."""
    return [n for n in names if all(getattr(get_router(n), k) == v for k, v in flags.items())]

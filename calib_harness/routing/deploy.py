"""A cascade router you can ship: Phase II of Algorithm 1 (Hao et al. 2026) from a small JSON.

Standard library only (``json``, ``math``, ``bisect``): serving needs neither lm-eval nor numpy
nor torch.  Importing this module imports nothing heavy as long as the packages above it
(``calib_harness``, ``calib_harness.routing``) stay lazy, which they are.

The JSON holds the inner bin edges of the small model's (calibrated) confidence (bins of
:class:`calib_harness.binning.EqualCountBinner`: right-closed, so a confidence equal to an edge
belongs to the lower bin, ``side="left"``; files of format version 1 used ``side="right"``), the selected
bins ``S`` (the K bins with the smallest confidence advantage of the large model), the
per-bin advantages (for information) and the small model's calibrator as plain numbers:

* ``{"kind": "identity"}``: raw confidence (UC);
* ``{"kind": "temperature", "temperature": T}``: input = option scores (log-likelihoods or
  logits), confidence = max softmax(scores / T);
* ``{"kind": "platt", "a": a, "b": b, "logit_input": bool}``: input = a scalar feature
  (``feature`` names it, e.g. ``mean_logit``), confidence = sigmoid(a x + b), with
  ``x = logit(feature)`` when ``logit_input`` (Platt on a probability);
* ``{"kind": "interp", "x": [...], "y": [...]}``: a monotone piecewise-linear map (isotonic
  regression), clipped at the ends;
* ``{"kind": "bins", "edges": [...], "values": [...], "side": "right"}``: a step map
  (histogram binning), ``values[i]`` for ``edges[i-1] <= x < edges[i]`` (inner edges;
  ``"side": "left"`` for right-closed bins ``edges[i-1] < x <= edges[i]``).

``route(x)`` accepts what the calibrator needs: a list of option scores (for a calibrator of the
confidence, the raw confidence is their softmax maximum), a scalar (confidence or the named
feature), or a dict of features (``{"mean_logit": ..., "confidence": ...}``).
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

FORMAT = "calib-harness/cascade-router"
VERSION = 2


def _softmax_max(scores: Sequence[float], temperature: float = 1.0) -> float:
    xs = [float(s) / temperature for s in scores if s is not None and not math.isnan(float(s)) and float(s) != -math.inf]
    if not xs:
        raise ValueError("no finite option scores")
    m = max(xs)
    z = sum(math.exp(x - m) for x in xs)
    return 1.0 / z  # exp(m - m) / z


def apply_calibrator(spec: Mapping[str, Any], x: Any) -> float:
    """Calibrated confidence of one input under a calibrator spec (see module docstring)."""
    kind = spec.get("kind", "identity")
    feature = spec.get("feature", "confidence")
    if isinstance(x, Mapping):
        if kind == "temperature":
            if "option_scores" not in x:
                raise ValueError("a temperature calibrator needs the option scores (key 'option_scores')")
            x = x["option_scores"]
        else:
            if feature not in x:
                raise ValueError(f"this router reads feature {feature!r}; got keys {sorted(x)}")
            x = x[feature]
    if kind == "temperature":
        if isinstance(x, (int, float)):
            raise ValueError("a temperature-scaled router needs the option scores, not a scalar confidence")
        return _softmax_max(x, float(spec["temperature"]))
    if not isinstance(x, (int, float)):
        if feature != "confidence":
            raise ValueError(f"{kind} calibrator on {feature!r} needs a scalar input")
        x = _softmax_max(x, 1.0)  # option scores -> the raw confidence (max of their softmax)
    x = float(x)
    if kind == "identity":
        return x
    if kind == "platt":
        if spec.get("logit_input"):
            p = min(max(x, 1e-12), 1.0 - 1e-12)
            x = math.log(p) - math.log1p(-p)
        t = float(spec["a"]) * x + float(spec["b"])
        return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))
    if kind == "interp":
        xs, ys = spec["x"], spec["y"]
        if x <= xs[0]:
            return float(ys[0])
        if x >= xs[-1]:
            return float(ys[-1])
        i = bisect.bisect_right(xs, x)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return float(y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    if kind == "bins":
        find = bisect.bisect_left if spec.get("side", "right") == "left" else bisect.bisect_right
        return float(spec["values"][find(spec["edges"], x)])
    raise ValueError(f"unknown calibrator kind {kind!r}")


@dataclass
class DeployableRouter:
    """Phase II of Algorithm 1.  Build it with :func:`calib_harness.routing.compare.build_deployable`
    (or by hand), ``save`` it, ``load`` it where the small model serves, call ``route``."""

    edges: list[float]
    selected_bins: list[int]
    calibrator: dict[str, Any] = field(default_factory=lambda: {"kind": "identity"})
    advantage: list[float] = field(default_factory=list)
    k: int | None = None
    small_model: str | None = None
    large_model: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    side: str = "left"

    def __post_init__(self) -> None:
        if self.side not in ("left", "right"):
            raise ValueError(f"side must be 'left' (right-closed bins) or 'right', got {self.side!r}")
        self.edges = [float(e) for e in self.edges]
        if any(b < a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError("bin edges must be sorted")
        self.selected_bins = sorted(int(b) for b in self.selected_bins)
        n = len(self.edges) + 1
        bad = [b for b in self.selected_bins if not 0 <= b < n]
        if bad:
            raise ValueError(f"selected bins {bad} out of range for {n} bins")
        self._selected = set(self.selected_bins)

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 1

    def confidence(self, x: Any) -> float:
        """The small model's calibrated confidence for one input."""
        return apply_calibrator(self.calibrator, x)

    def bin_of(self, x: Any) -> int:
        find = bisect.bisect_left if self.side == "left" else bisect.bisect_right
        return find(self.edges, self.confidence(x))

    def route(self, x: Any) -> str:
        """``"small"`` (keep the small model's answer) or ``"large"`` (call the large model)."""
        return "small" if self.bin_of(x) in self._selected else "large"

    def route_many(self, xs: Sequence[Any]) -> list[str]:
        return [self.route(x) for x in xs]

    # -- files -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"format": FORMAT, "version": VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeployableRouter":
        if d.get("format") != FORMAT:
            raise ValueError(f"not a cascade router file (format {d.get('format')!r})")
        if int(d.get("version", 0)) > VERSION:
            raise ValueError(f"router file version {d.get('version')} is newer than this code ({VERSION})")
        keys = {"edges", "selected_bins", "calibrator", "advantage", "k", "small_model", "large_model", "meta", "side"}
        kw = {k: v for k, v in d.items() if k in keys}
        kw.setdefault("side", "right" if int(d.get("version", 1)) < 2 else "left")
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "DeployableRouter":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (:func:`calib_harness.outputs.write_text`).  The caller decides
        whether an existing file may be replaced (the CLI refuses without ``--force``)."""
        from calib_harness.outputs import write_text

        return write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "DeployableRouter":
        return cls.from_json(Path(path).read_text())


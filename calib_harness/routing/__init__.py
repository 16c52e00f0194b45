"""Cascade routing between two models' runs (Hao et al. 2026 section 2.2, Algorithm 1).

Modules (one job each):

* :mod:`.base`: the router protocol (fit / score / route / curve) and registry
  (``register_router``, ``get_router``, ``list_routers``), and :class:`RoutingData`;
* :mod:`.advantage`: Algorithm 1 on arrays, and the UC router;
* :mod:`.calibrated`: the CC router, its calibrator chosen by cross-fitting on the calibration half;
* :mod:`.baselines`: threshold (GATEKEEPER's deferral rule), random, oracle (ideal deferral);
* :mod:`.hybrid`, :mod:`.chain`: the hybrid router and N-model chains (issue #17);
* :mod:`.mf`: RouteLLM 0.2.0's matrix-factorisation router (torch);
* :mod:`.embeddings`: cached local prompt embeddings for MF;
* :mod:`.curves`: accuracy-vs-share curves, normalised APGR, GATEKEEPER's s_d;
* :mod:`.compare`: everything on two aligned runs (split, calibrate, fit, evaluate, tables);
* :mod:`.plots`: matplotlib figures;
* :mod:`.deploy`: the standard-library-only router you ship (Phase II from a JSON).

Attribute access is lazy so that ``import calib_harness.routing.deploy`` stays light
(no numpy, torch or lm-eval at serving time).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AdvantageRouter": "advantage",
    "BinStats": "advantage",
    "ThresholdRouter": "baselines",
    "RandomRouter": "baselines",
    "OracleRouter": "baselines",
    "UncalibratedConfidenceRouter": "advantage",
    "MFCascadeRouter": "mf",
    "RoutingCurve": "curves",
    "apgr": "curves",
    "deferral_score": "curves",
    "random_curve": "curves",
    "ideal_deferral_accuracy": "curves",
    "MFModel": "mf",
    "MFRouter": "mf",
    "embed_texts": "embeddings",
    "DeployableRouter": "deploy",
    "load_router": "chain_deploy",
    "ChainRouter": "chain",
    "run_chain": "chain",
    "DeployableChain": "chain_deploy",
    "HybridRouter": "hybrid",
    "CascadeComparison": "compare",
    "compare_routers": "compare",
    "build_deployable": "compare",
    "default_routers": "compare",
    "Router": "base",
    "RoutingData": "base",
    "register_router": "base",
    "get_router": "base",
    "list_routers": "base",
    "make_router": "base",
    "NotFittedError": "base",
    "CalibratedConfidenceRouter": "calibrated",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The saved variants of a GATEKEEPER sweep: one JSON per finished variant, read by the table and the plots.

Kept apart from :mod:`.sweep` (which writes variants) and :mod:`.plots` (which draws them) so that neither
imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path

from calib_harness.gatekeeper.evaluation import CascadeEval
from calib_harness.outputs import write_json

#: table / plot order of the variant kinds
METHOD_ORDER = {"untuned": 0, "posthoc_cc": 1, "ce": 2, "gatekeeper": 3}


class VariantStore:
    """One JSON per finished variant under ``folder/variants`` (strict JSON: undefined figures are null)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        (self.folder / "variants").mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.folder / "variants" / f"{name}.json"

    def has(self, name: str) -> bool:
        return self.path(name).exists()

    def save(self, name: str, ev: CascadeEval) -> None:
        write_json(self.path(name), ev.to_dict())

    def load_all(self) -> list[CascadeEval]:
        """The saved variants in table order (nulls read back as NaN)."""
        out = []
        for p in sorted((self.folder / "variants").glob("*.json")):
            d = json.loads(p.read_text())
            d.pop("null_reasons", None)
            for k in ("s_o", "s_d", "auroc"):
                if d.get(k) is None:
                    d[k] = float("nan")
            out.append(CascadeEval(**d))
        return sorted(out, key=order)


def order(ev: CascadeEval) -> tuple:
    return (METHOD_ORDER.get(ev.method, 9), -(ev.alpha if ev.alpha is not None else 0.0))

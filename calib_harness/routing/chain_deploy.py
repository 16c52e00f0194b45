"""A chain router you can ship: :class:`DeployableChain`, one
:class:`~calib_harness.routing.deploy.DeployableRouter` per stage of a chain M1 -> ... -> Mn
(:mod:`calib_harness.routing.chain`), from a small JSON.

Standard library only, like :mod:`calib_harness.routing.deploy`: each stage is served by
:class:`DeployableRouter` (its calibrator spec, bin edges and selected bins), and the chain
calls the models in order until a stage keeps its model's answer::

    chain = load_router("router.json")          # a DeployableRouter or a DeployableChain
    chain.route(lambda j: inputs_of_model(j))   # -> the name of the model that answers
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from calib_harness.routing.deploy import FORMAT, VERSION, DeployableRouter


CHAIN_FORMAT = "calib-harness/chain-router"


@dataclass
class DeployableChain:
    """A chain M1 -> ... -> Mn you can ship (:mod:`calib_harness.routing.chain`): one
    :class:`DeployableRouter` per stage (stage ``j`` decides, from model ``j``'s own input,
    whether to keep its answer or call model ``j + 1``).  Standard library only."""

    models: list[str]
    stages: list[DeployableRouter]
    setting: list[int] = field(default_factory=list)
    costs: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stages = [s if isinstance(s, DeployableRouter) else DeployableRouter.from_dict({"format": FORMAT, **s}) for s in self.stages]
        if len(self.models) != len(self.stages) + 1:
            raise ValueError(f"a chain of {len(self.models)} models needs {len(self.models) - 1} stages, got {len(self.stages)}")

    def keep(self, stage: int, x: Any) -> bool:
        """True when model ``stage``'s answer (input ``x`` to its calibrator) is kept."""
        return self.stages[stage].route(x) == "small"

    def route(self, inputs: Sequence[Any] | Any) -> str:
        """The model that answers: ``inputs`` is a sequence (model j's input at position j) or a
        callable ``j -> input`` (called lazily, so later models run only when needed)."""
        get = inputs if callable(inputs) else (lambda j: inputs[j])
        for j in range(len(self.stages)):
            if self.keep(j, get(j)):
                return self.models[j]
        return self.models[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHAIN_FORMAT,
            "version": VERSION,
            "models": list(self.models),
            "stages": [s.to_dict() for s in self.stages],
            "setting": list(self.setting),
            "costs": self.costs,
            "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeployableChain":
        if d.get("format") != CHAIN_FORMAT:
            raise ValueError(f"not a chain router file (format {d.get('format')!r})")
        if int(d.get("version", 0)) > VERSION:
            raise ValueError(f"router file version {d.get('version')} is newer than this code ({VERSION})")
        stages = [DeployableRouter.from_dict(s) for s in d["stages"]]
        return cls(list(d["models"]), stages, list(d.get("setting", [])), d.get("costs"), dict(d.get("meta") or {}))

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically (:func:`calib_harness.outputs.write_text`).  The caller decides
        whether an existing file may be replaced (the CLI refuses without ``--force``)."""
        from calib_harness.outputs import write_text

        return write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "DeployableChain":
        return cls.from_dict(json.loads(Path(path).read_text()))


def load_router(path: str | Path) -> "DeployableRouter | DeployableChain":
    """Load a two-model router or a chain router file, whichever ``path`` holds."""
    d = json.loads(Path(path).read_text())
    return DeployableChain.from_dict(d) if d.get("format") == CHAIN_FORMAT else DeployableRouter.from_dict(d)

"""churnlens: predict customer churn, explain it, and turn it into a budgeted retention list.

The DataFrame-first API (names load lazily, so importing churnlens is instant)::

    import churnlens as cl

    tables = cl.validate(cl.simulate(2000, seed=1))     # or cl.load_cdnow(), your own frames
    config = cl.Config()                                # or cl.load_config("run.yaml")
    result = cl.fit(cl.training_set(tables, config), config)
    risk = cl.score(result.model, tables, "2025-12-31", config).risk_list

File- and registry-based steps (what the CLI runs) are in `churnlens.pipeline`.
"""

from __future__ import annotations

import importlib
import logging

__version__ = "0.2.0"

_HOMES = {
    "Config": "churnlens.config",
    "load_config": "churnlens.config",
    "ChurnlensError": "churnlens.errors",
    "simulate": "churnlens.data.simulate",
    "load_cdnow": "churnlens.datasets",
    "validate": "churnlens.data.contract",
    "Tables": "churnlens.data.tables",
    "training_set": "churnlens.features.engine",
    "build_features": "churnlens.features.engine",
    "population": "churnlens.labels",
    "labels": "churnlens.labels",
    "fit": "churnlens.modeling.train",
    "TrainingResult": "churnlens.modeling.train",
    "evaluate": "churnlens.modeling.evaluate",
    "ChurnModel": "churnlens.modeling.model",
    "explain": "churnlens.scoring.reasons",
    "score": "churnlens.scoring.score",
    "ScoreResult": "churnlens.scoring.score",
}
__all__ = sorted(_HOMES)

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'churnlens' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

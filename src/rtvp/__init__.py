"""rtvp: open-vocabulary and closed-set industrial defect detection (MMIOC benchmark builder + RTVPNet).

The public API, imported on first use so that ``import rtvp`` stays light (no torch until needed)::

    import rtvp

    runs = rtvp.train(rtvp.TrainConfig(data="bench", epochs=30, imgsz=320))   # rtvp train
    metrics = rtvp.val(runs["full"]["best"], "bench", protocol="closed")      # rtvp val --weights
    dets = rtvp.Predictor(runs["full"]["best"]).predict(["a.png"], prompts=["scratch"])   # rtvp predict
    scores = rtvp.evaluate("bench/annotations/closed_val.json", "pred.json")  # rtvp val --predictions
    model = rtvp.build_model(rtvp.ModelConfig(scale="n"), text_dim=384)       # an untrained RTVPNet
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# OpenMP threads that spin while waiting collapse throughput as soon as another process shares the cores
# (measured on 2 cores with one busy neighbour: expert-n training 1.6 img/s spinning vs 13.9 img/s passive).
# Only a default: takes effect when rtvp is imported before torch and the user has not set the variable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "Predictor": "rtvp.predict.predictor",
    "train": "rtvp.api",  # the package of the training loop is rtvp.training
    "val": "rtvp.api",
    "evaluate": "rtvp.evaluation.evaluator",
    "TrainConfig": "rtvp.training.config",
    "ModelConfig": "rtvp.models.config",
    "build_model": "rtvp.models.detector",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a public name on first access (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'rtvp' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

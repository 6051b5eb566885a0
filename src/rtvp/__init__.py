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


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``).

    Here, torch-free, because the wait policy below needs it before torch loads; ``rtvp.device`` and the benchmark
    scripts use this one too.
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _default_wait_policy() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` only when the machine is already oversubscribed; else libgomp's own default.

    libgomp's default (spin briefly, then sleep) trained 1.7-1.8x faster than PASSIVE on a quiet 2-core machine and
    1.4-1.9x next to a second training, but rtvpnet-n fell to 0.4x with four busy processes on 2 cores
    (``benchmarks/results/wait_policy``). Decided once, from the 1-minute load average at import: the variable is
    read when torch loads libgomp. A value the user set is kept; nothing happens if torch was imported first.
    """
    if "OMP_WAIT_POLICY" in os.environ or not hasattr(os, "getloadavg"):
        return
    if os.getloadavg()[0] > usable_cpus():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


_default_wait_policy()


def omp_wait_policy() -> str:
    """The OpenMP wait policy this process runs with: ``OMP_WAIT_POLICY``'s value, or ``"libgomp default"``."""
    return os.environ.get("OMP_WAIT_POLICY") or "libgomp default"


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

"""Exponential moving average of model weights with a warm-up ramp of the decay.

``d(n) = decay * (1 - exp(-n / tau))`` after ``n`` updates, so the average follows the raw weights closely early
in training and settles to ``decay`` later (the ramp used by YOLOv5/v8, re-derived here from the formula).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """Return the bare module inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


class ModelEMA:
    """Keeps an EMA copy of a model: ``ema = d * ema + (1 - d) * model`` for float tensors; other buffers copied.

    Frozen parameters (``requires_grad=False`` at construction, e.g. a loaded SAM encoder) never change, so they
    are copied once and skipped afterwards; the rest is updated with one fused ``torch._foreach_lerp_``.

    Args:
        model: the trained model (DDP wrappers are unwrapped).
        decay: asymptotic decay.
        tau: ramp length in updates (``d`` reaches ``63%`` of ``decay`` after ``tau`` updates).
        updates: number of updates already applied (when resuming).

    Examples:
        >>> ema = ModelEMA(nn.Linear(2, 2), decay=0.9, tau=1.0)
        >>> ema.update(nn.Linear(2, 2)); ema.updates
        1
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        if tau <= 0:
            raise ValueError(f"ema tau must be > 0, got {tau}")
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates
        frozen = {n for n, p in unwrap(model).named_parameters() if not p.requires_grad}
        ema_sd = self.module.state_dict()
        self._float = [n for n, t in ema_sd.items() if t.dtype.is_floating_point and n not in frozen]
        self._other = [n for n, t in ema_sd.items() if not t.dtype.is_floating_point]

    def current_decay(self) -> float:
        """Decay applied at the next update."""
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average."""
        d = self.current_decay()
        self.updates += 1
        src, dst = unwrap(model).state_dict(), self.module.state_dict()
        if self._float:
            torch._foreach_lerp_([dst[n] for n in self._float], [src[n].detach().to(dst[n].dtype) for n in self._float],
                                 1.0 - d)
        for n in self._other:
            dst[n].copy_(src[n])

    def state_dict(self) -> dict[str, Any]:
        """Averaged weights (a plain model ``state_dict``, loadable into the bare model)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any], updates: int) -> None:
        """Restore averaged weights and the update counter (the ramp position)."""
        self.module.load_state_dict(state)
        self.updates = int(updates)

"""Distribution focal loss (Li et al., Generalized Focal Loss, 2020) for the DFL box branch."""

from __future__ import annotations

import torch

__all__ = ["dfl_loss", "dfl_targets"]


def dfl_targets(dist: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Clamp continuous ltrb distances (stride units) into the representable bin range ``[0, reg_max - 1 - 0.01]``.

    The upper bound keeps the right neighbour bin ``floor(t) + 1`` inside ``0..reg_max-1``.
    """
    return dist.clamp(0, reg_max - 1 - 0.01)


def dfl_loss(pred_dist: torch.Tensor, target: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    """Cross-entropy split over the two bins around each continuous target, averaged over the 4 sides.

    For a target ``t`` with ``i = floor(t)``: ``loss = (i + 1 - t) * CE(bin i) + (t - i) * CE(bin i + 1)``; e.g.
    ``t = 2.3`` gives ``0.7 * CE(2) + 0.3 * CE(3)``.

    Args:
        pred_dist: ``(N, 4 * reg_max)`` or ``(N, 4, reg_max)`` bin logits.
        target: ``(N, 4)`` continuous distances in bin (stride) units; clamped with :func:`dfl_targets`.
        reg_max: number of bins.

    Returns:
        ``(N,)`` per-anchor loss (mean over the 4 sides).
    """
    logp = pred_dist.reshape(-1, 4, reg_max).float().log_softmax(-1)
    t = dfl_targets(target.float(), reg_max)
    left = t.floor().long()
    w_left = (left + 1).to(t.dtype) - t
    ce_left = -logp.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    ce_right = -logp.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return (ce_left * w_left + ce_right * (1 - w_left)).mean(-1)

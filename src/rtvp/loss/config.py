"""``LossConfig``: the loss gains and label-assignment settings of ``rtvp train`` (``--set loss.seg=2.5``).

The defaults are :class:`~rtvp.loss.DetectionCriterion`'s (YOLOv8's gains: box 7.5, cls 0.5, dfl 1.5; the mask loss
weighed like the box, as YOLOv8-seg does; task-aligned assignment with top-10, alpha 0.5, beta 6).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rtvp.errors import ConfigError


@dataclass(frozen=True)
class LossConfig:
    """Loss gains and assigner settings (the ``loss`` section of a training config).

    Attributes:
        box: CIoU box loss gain.
        dfl: distribution focal loss gain.
        cls: classification (BCE) gain.
        nce: region-text InfoNCE gain (RTVPNet).
        aux: auxiliary gain (RTVPNet's expert-logit alignment).
        dp: domain-projection (L_dp) gain (RTVPNet with EDP).
        obj: class-agnostic objectness gain (models with ``objectness``).
        seg: instance-mask gain (models with ``masks``).
        dice: soft Dice mask gain (models with ``masks``; 0 = off). Helps thin instances (cracks): see
            :mod:`rtvp.loss.segment`.
        topk: anchors the task-aligned assigner keeps per ground-truth box.
        alpha: assigner score exponent.
        beta: assigner IoU exponent.
    """

    box: float = 7.5
    dfl: float = 1.5
    cls: float = 0.5
    nce: float = 0.5
    aux: float = 1.0
    dp: float = 1.0
    obj: float = 0.5
    seg: float = 7.5
    dice: float = 0.0
    topk: int = 10
    alpha: float = 0.5
    beta: float = 6.0

    def __post_init__(self) -> None:
        bad = [f"loss.{k}={v}" for k, v in asdict(self).items() if not v >= 0]
        if self.topk < 1:
            bad.append(f"loss.topk={self.topk}")
        if bad:
            raise ConfigError(f"{', '.join(bad)}: loss gains and assigner exponents must be >= 0 and topk >= 1")

    def criterion_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~rtvp.loss.DetectionCriterion`."""
        return asdict(self)

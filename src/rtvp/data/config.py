"""``DataConfig``: the data-pipeline settings (image size, channels, vocabulary, augmentation), one typed section.

The same defaults as :class:`rtvp.data.DetectionDataset`'s keyword arguments (a unit test keeps them in sync), so a
trainer can hold a ``DataConfig`` in its run config and call :meth:`DetectionDataset.from_config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rtvp.errors import ConfigError

AUTO_CACHE_BYTES = 2 * 2**30
"""Decoded-image cache budget of ``cache: null`` (auto): a split is cached when ``images x imgsz^2 x channels``
bytes (an upper bound: the long side is ``imgsz``) fit in it, e.g. 9,700 RGB images at 256 px or 2,400 at 640 px."""


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations (the ``augment`` section of ``rtvp train``'s config; ``DataConfig`` extends it).

    Attributes:
        mosaic: probability of a 4-image mosaic (training only).
        mosaic_stop_epoch: from this epoch on mosaic is off (the "close mosaic" phase); ``None`` -> never.
        flip: probability of a horizontal flip.
        flipud: probability of a vertical flip.
        hsv: ``(h, s, v)`` gains of the HSV jitter (3-channel images; other channel counts get brightness from
            ``v`` and contrast from ``s``).
        affine: ``(degrees, translate, scale, shear)``: max rotation in degrees, max translation as a fraction of
            the side, scale gain range ``1 +- scale``, max shear in degrees.
        copy_paste: probability of pasting real defect instances (from images of the same scene) into a sample.
        cache: decode and resize every image once at start-up and keep it in RAM (shared with forked workers);
            ``None`` (auto) caches when the resized images fit in :data:`AUTO_CACHE_BYTES`.
    """

    mosaic: float = 1.0
    mosaic_stop_epoch: int | None = None
    flip: float = 0.5
    flipud: float = 0.0
    hsv: tuple[float, float, float] = (0.015, 0.7, 0.4)
    affine: tuple[float, float, float, float] = (0.0, 0.1, 0.5, 0.0)
    copy_paste: float = 0.2
    cache: bool | None = None

    def __post_init__(self) -> None:
        validate_augment(self, "augment")


@dataclass(frozen=True)
class DataConfig(AugmentConfig):
    """Data pipeline settings: the augmentations of :class:`AugmentConfig` plus what every split needs.

    Attributes:
        imgsz: square network input side in pixels (letterbox target).
        channels: ``3`` -> RGB (grayscale replicated), ``1`` -> luminance, ``None`` -> as stored (every image of
            the benchmark must then have the same channel count).
        vocab: ``"all"`` -> every allowed class in fixed order; ``"sampled"`` -> per-batch vocabulary of the
            classes present plus random allowed negatives.
        vocab_size: vocabulary slots ``K`` (``0`` -> the number of allowed classes); padded with ``-1``.
        masks: also produce instance-mask targets (``Sample.masks``, ``Batch.gt_segs``; ``rtvp.data.masks``).
    """

    imgsz: int = 640
    channels: int | None = 3
    vocab: Literal["all", "sampled"] = "all"
    vocab_size: int = 0
    masks: bool = False

    def __post_init__(self) -> None:
        validate(self)


def validate(cfg: DataConfig) -> None:
    """Raise ``ConfigError`` naming the field when a setting is out of range."""
    if cfg.imgsz < 32 or cfg.imgsz % 32:
        raise ConfigError(f"data.imgsz={cfg.imgsz}: must be a multiple of 32 and >= 32 (the model's largest stride)")
    if cfg.channels is not None and cfg.channels < 1:
        raise ConfigError(f"data.channels={cfg.channels}: use 1, 3, another positive count, or None (as stored)")
    if cfg.vocab not in ("all", "sampled"):
        raise ConfigError(f"data.vocab={cfg.vocab!r}: must be 'all' or 'sampled'")
    if cfg.vocab_size < 0:
        raise ConfigError(f"data.vocab_size={cfg.vocab_size}: must be >= 0 (0 = number of allowed classes)")
    validate_augment(cfg, "data")


def validate_augment(cfg: AugmentConfig, section: str) -> None:
    """Raise ``ConfigError`` naming ``<section>.<field>`` when an augmentation setting is out of range."""
    for name in ("mosaic", "flip", "flipud", "copy_paste"):
        p = getattr(cfg, name)
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{section}.{name}={p}: a probability must lie in [0, 1]")
    if len(cfg.hsv) != 3 or any(g < 0 for g in cfg.hsv):
        raise ConfigError(f"{section}.hsv={cfg.hsv}: expected three non-negative gains (h, s, v)")
    if len(cfg.affine) != 4 or any(v < 0 for v in cfg.affine):
        raise ConfigError(f"{section}.affine={cfg.affine}: expected non-negative (degrees, translate, scale, shear)")
    degrees, translate, scale, shear = cfg.affine
    if translate > 0.5 or scale >= 1.0 or shear >= 45 or degrees > 180:
        raise ConfigError(f"{section}.affine={cfg.affine}: need translate <= 0.5, scale < 1, shear < 45, "
                          "degrees <= 180")

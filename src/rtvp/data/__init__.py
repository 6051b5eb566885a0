"""Data pipeline: a torch dataset over a benchmark split, augmentations with boxes, per-batch vocabulary, loaders.

Public API: :class:`DetectionDataset`, :class:`DataConfig` (:class:`AugmentConfig` + size and vocabulary),
:class:`Collator`, :class:`Sample`, :class:`EpochSampler`, :func:`build_dataloader`, :func:`build_vocab`.
"""

from rtvp.data.collate import Collator, Sample
from rtvp.data.config import AugmentConfig, DataConfig
from rtvp.data.dataset import DetectionDataset
from rtvp.data.loader import EpochSampler, build_dataloader
from rtvp.data.vocab import build_vocab, remap_labels

__all__ = [
    "AugmentConfig",
    "Collator",
    "DataConfig",
    "DetectionDataset",
    "EpochSampler",
    "Sample",
    "build_dataloader",
    "build_vocab",
    "remap_labels",
]

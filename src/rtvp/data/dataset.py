"""``DetectionDataset``: a torch map-style dataset over one split of an rtvp benchmark.

Per item: read the image (``rtvp.imaging.read_image``), resize its long side to ``imgsz``, optionally paste defect
instances, then either letterbox (no augmentation) or mosaic / random affine, flips and colour jitter. Every random
choice comes from a generator seeded by ``(seed, epoch, index)``, so an item is the same in any worker, any worker
count and after a resume. Items may be addressed by ``index`` or by ``(epoch, index)`` (what ``EpochSampler``
yields, so persistent workers see the epoch without shared state).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from rtvp.data.annotations import load_split
from rtvp.data.collate import Collator, Sample
from rtvp.data.config import AUTO_CACHE_BYTES, DataConfig
from rtvp.data.copy_paste import InstanceBank, paste
from rtvp.data.masks import instance_masks
from rtvp.data.mosaic import mosaic4
from rtvp.data.transforms import Annotated, affine_matrix, flip, hsv_jitter, pad_square, resize_long_side, warp
from rtvp.data.vocab import resolve_size
from rtvp.errors import ConfigError, DataError
from rtvp.imaging import read_image
from rtvp.structures import Batch


class DetectionDataset(Dataset):
    """Images and boxes of one benchmark split, letterboxed to ``imgsz`` and optionally augmented.

    Args:
        bench: benchmark root (holds ``annotations/<split>.json``).
        split: split name, e.g. ``"closed_train"``, ``"open_val"``.
        protocol: ``"closed"`` (every category allowed) or ``"open"`` (only ``seen`` categories on ``*_train``
            splits; every category on other splits: the evaluator picks the vocabulary there).
        imgsz, channels, vocab, vocab_size, masks, mosaic, mosaic_stop_epoch, flip, flipud, hsv, affine, copy_paste,
            cache: see :class:`rtvp.data.config.DataConfig`.
        augment: apply the training augmentations (off: plain letterbox).
        seed: base seed of every random choice.

    Attributes:
        categories: COCO category dicts sorted by id; ``Batch.vocab_ids`` index this list.
        allowed: ``(A,)`` int64 category indices usable as vocabulary.
        class_texts: the prompt text of every category (aligned with ``categories``).
        channels: channel count of the produced images.
        vocab_size: resolved vocabulary size ``K``.
        collator: the picklable collate function for this dataset.

    Examples:
        >>> ds = DetectionDataset(bench, "closed_train", "closed", imgsz=320, augment=True)  # doctest: +SKIP
        >>> batch = ds.collate([ds[0], ds[1]])  # doctest: +SKIP
    """

    def __init__(self, bench: str | Path, split: str, protocol: Literal["closed", "open"] = "closed",
                 imgsz: int = 640, augment: bool = False, vocab: Literal["all", "sampled"] = "all",
                 vocab_size: int = 0, channels: int | None = 3, mosaic: float = 1.0,
                 mosaic_stop_epoch: int | None = None, flip: float = 0.5, flipud: float = 0.0,
                 hsv: tuple[float, float, float] = (0.015, 0.7, 0.4),
                 affine: tuple[float, float, float, float] = (0.0, 0.1, 0.5, 0.0), copy_paste: float = 0.2,
                 seed: int = 0, cache: bool | None = None, masks: bool = False) -> None:
        self.cfg = DataConfig(imgsz=imgsz, channels=channels, vocab=vocab, vocab_size=vocab_size, masks=masks,
                              mosaic=mosaic,
                              mosaic_stop_epoch=mosaic_stop_epoch, flip=flip, flipud=flipud, hsv=tuple(hsv),
                              affine=tuple(affine), copy_paste=copy_paste, cache=cache)
        if protocol not in ("closed", "open"):
            raise ConfigError(f"protocol={protocol!r}: must be 'closed' or 'open'")
        self.bench, self.split, self.protocol = Path(bench), split, protocol
        self.imgsz, self.augment, self.seed, self.epoch = imgsz, augment, seed, 0
        path = self.bench / "annotations" / f"{split}.json"
        seen_only = protocol == "open" and split.endswith("_train")
        self.categories, self.entries, self.dropped, keep = load_split(path, self.bench, seen_only, augment or masks,
                                                                       imgsz // 2 if masks else 0)
        self.allowed = np.flatnonzero(keep).astype(np.int64)
        self.class_texts = [str(c.get("text") or c.get("name")) for c in self.categories]
        self.channels = self._resolve_channels(path)
        self.vocab, self.vocab_size = vocab, resolve_size(vocab, vocab_size, len(self.allowed))
        self.collator = Collator(vocab, self.vocab_size, tuple(int(a) for a in self.allowed), seed,
                                 len(self.categories))
        self.bank = InstanceBank(self.entries) if augment and copy_paste > 0 else None
        self.cached = bool(cache) if cache is not None else self.cache_bytes() <= AUTO_CACHE_BYTES
        self._cache: list[tuple[np.ndarray, float]] | None = self._fill_cache() if self.cached else None

    @classmethod
    def from_config(cls, bench: str | Path, split: str, protocol: Literal["closed", "open"], cfg: DataConfig,
                    augment: bool, seed: int = 0) -> DetectionDataset:
        """Build from a :class:`DataConfig`."""
        return cls(bench, split, protocol, augment=augment, seed=seed, **dataclasses.asdict(cfg))

    def _resolve_channels(self, path: Path) -> int:
        """Output channel count; with ``channels=None`` every image must declare the same stored count."""
        if self.cfg.channels is not None:
            return self.cfg.channels
        stored = {e.channels for e in self.entries}
        if None in stored:
            raise DataError(f"{path}: channels=None (keep as stored) needs the 'channels' field on every image; "
                            "rebuild the benchmark or pass channels=3 (RGB) or channels=1 (grayscale)")
        if len(stored) != 1:
            counts = {c: sum(e.channels == c for e in self.entries) for c in sorted(stored)}
            raise DataError(f"{path}: channels=None but images differ in channel count {counts}; pass channels=3 "
                            "(RGB, gray replicated) or channels=1 (luminance) to convert them")
        return int(stored.pop())

    def _read(self, i: int) -> tuple[np.ndarray, float]:
        """Image ``i`` resized so its long side is ``imgsz``, and the ratio used."""
        e = self.entries[i]
        img = read_image(e.path, self.cfg.channels)
        if img.shape[2] != self.channels:
            raise DataError(f"{e.path}: has {img.shape[2]} channels, the split declares {self.channels}")
        if img.shape[:2] != (e.height, e.width):
            raise DataError(f"{e.path}: decoded size {img.shape[1]}x{img.shape[0]} differs from the annotation "
                            f"{e.width}x{e.height}; rebuild the benchmark")
        out, scale = resize_long_side(Annotated.empty(img), self.imgsz)
        return out.image, scale

    def cache_bytes(self) -> int:
        """Upper bound of the decoded-image cache of this split in bytes (long side ``imgsz``, uint8)."""
        return len(self.entries) * self.imgsz * self.imgsz * self.channels

    def _fill_cache(self) -> list[tuple[np.ndarray, float]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(self._read, range(len(self.entries))))

    def load(self, i: int) -> tuple[Annotated, float]:
        """Image ``i`` and its instances in the resized frame (long side ``imgsz``), and the resize ratio."""
        img, scale = self._cache[i] if self._cache is not None else self._read(i)
        e = self.entries[i]
        h, w = img.shape[:2]
        r = np.array([w / e.width, h / e.height], dtype=np.float32)
        ann = Annotated(img, e.boxes * np.tile(r, 2), e.labels, e.points * r, e.owner, e.part, e.polygonal)
        return ann, scale

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: int | tuple[int, int]) -> Sample:
        """Sample ``item`` (an index, or ``(epoch, index)`` as ``EpochSampler`` yields)."""
        epoch, index = (int(item[0]), int(item[1])) if isinstance(item, tuple) else (self.epoch, int(item))
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        e = self.entries[index]
        rng = np.random.default_rng([self.seed, epoch, index]) if self.augment else None
        ann, scale = self._load_aug(index, rng)
        h, w = ann.hw
        pad = ((self.imgsz - w) // 2, (self.imgsz - h) // 2)
        ann = pad_square(ann, self.imgsz)[0] if rng is None else self._augment(ann, index, epoch, rng)
        masks, has_mask = instance_masks(ann, self.imgsz) if self.cfg.masks else (None, None)
        return Sample(image=ann.image, boxes=ann.boxes.astype(np.float32), labels=ann.labels.astype(np.int64),
                      image_id=e.id, orig_size=(e.height, e.width), scale=scale, pad=pad, index=index, epoch=epoch,
                      masks=masks, has_mask=has_mask)

    def _load_aug(self, i: int, rng: np.random.Generator | None) -> tuple[Annotated, float]:
        """``load(i)`` plus copy-paste (defect-free targets: prob ``p``, 1-3 instances; others ``p/2``, 1)."""
        ann, scale = self.load(i)
        if rng is None or self.bank is None or not len(self.bank):
            return ann, scale
        free = len(ann) == 0
        if rng.random() >= (self.cfg.copy_paste if free else self.cfg.copy_paste / 2):
            return ann, scale
        for j, k in self.bank.draw(i, int(rng.integers(1, 4)) if free else 1, rng):
            src, _ = self.load(j)
            ann = paste(ann, src, k, rng)
        return ann, scale

    def _augment(self, ann: Annotated, index: int, epoch: int, rng: np.random.Generator) -> Annotated:
        """Mosaic or letterbox, random affine, flips, colour jitter."""
        s, cfg = self.imgsz, self.cfg
        use_mosaic = rng.random() < cfg.mosaic and (cfg.mosaic_stop_epoch is None or epoch < cfg.mosaic_stop_epoch)
        if use_mosaic and len(self) > 1:
            others = rng.integers(0, len(self), 3)
            tiles = [ann] + [self._load_aug(int(j), rng)[0] for j in others]
            center = tuple(int(c) for c in rng.uniform(0.5 * s, 1.5 * s, 2))
            ann, src_center = mosaic4(tiles, s, center), (float(s), float(s))
        else:
            ann, _ = pad_square(ann, s)
            src_center = (s / 2, s / 2)
        degrees, translate, scale, shear = cfg.affine
        if use_mosaic or degrees or translate or scale or shear:
            ann = warp(ann, affine_matrix(rng, src_center, s, degrees, translate, scale, shear), s)
        if rng.random() < cfg.flip:
            ann = flip(ann, horizontal=True)
        if rng.random() < cfg.flipud:
            ann = flip(ann, horizontal=False)
        if any(cfg.hsv):
            ann = dataclasses.replace(ann, image=hsv_jitter(ann.image, cfg.hsv, rng))
        return ann

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices (``EpochSampler`` passes the epoch with each index instead)."""
        self.epoch = int(epoch)

    def collate(self, samples: list[Sample]) -> Batch:
        """Collate samples into a ``Batch`` (same as ``self.collator``)."""
        return self.collator(samples)


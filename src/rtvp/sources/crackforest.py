"""CrackForest (CFD) converter: ``groundTruth/NNN.mat`` segmentations -> crack instances on ``image/NNN.jpg``.

``groundTruth.Segmentation`` (uint8 HxW) is 1 = background, 2 = crack. Values 3 and 4 are undocumented; inspecting
the 22 files that use them (e.g. 084, 097, 101, 102, 107) shows two different things:

* **4** marks thin, faint crack lines (a few hundred pixels, fill ratio of their boxes 0.06-0.35) that are visible
  cracks in the photo, drawn as a separate segment;
* **3** marks the *areas enclosed* by crack loops -- the intact pavement blocks of alligator cracking (up to ~30%
  of the image in 097/101) and the lens-shaped gaps between two crack branches (fill ratio ~0.6, compact).

Hence option ``extra_values``: ``lines`` (default: 4 is crack, 3 is background -- the reading above),
``crack`` (3 and 4 are crack; turns whole pavement blocks into "crack" blobs), ``ignore`` (both background).
Any other value (0, >= 5) is a malformed file.

Instances are 8-connected components of the crack mask. Cracks break into fragments a pixel or two apart (257 raw
components over the 98 shared images, 50 of them < 16 px); ``merge_gap`` (default 2 px) joins fragments closer
than that into one instance (145 instances), ``min_area`` (default 4 px) drops what is left of annotation specks.
Segmentations are exact (polygons, or RLE for crack networks that enclose holes). Native class name: ``crack``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.io

from rtvp.errors import DataError
from rtvp.sources._common import image_size, index_images, make_record, parse_guarded, parse_options, require_dir
from rtvp.sources._masks import mask_instances
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "crackforest"
CRACK_VALUES = {"lines": (2, 4), "crack": (2, 3, 4), "ignore": (2,)}
"""``extra_values`` option -> Segmentation values counted as crack."""


@dataclass(frozen=True)
class CrackForestOptions:
    """Options of the ``crackforest`` source.

    Attributes:
        images: image folder, relative to the root.
        ground_truth: folder of ``.mat`` files, relative to the root.
        extra_values: what Segmentation values 3/4 mean: ``lines`` (4 crack, 3 background), ``crack``, ``ignore``.
        merge_gap: join crack fragments closer than this many pixels into one instance (0 = off).
        min_area: drop instances with fewer pixels.
        label: native class name of the instances.
        on_error: ``raise`` (default) a ``DataError`` on a malformed ``.mat``, or ``skip`` it (issue record).
    """

    images: str = "image"
    ground_truth: str = "groundTruth"
    extra_values: Literal["lines", "crack", "ignore"] = "lines"
    merge_gap: int = 2
    min_area: int = 4
    label: str = "crack"
    on_error: Literal["raise", "skip"] = "raise"


def read_segmentation(path: Path) -> np.ndarray:
    """Load ``groundTruth.Segmentation`` from a CFD ``.mat`` as ``(H, W)`` uint8; ``DataError`` naming the file."""
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as e:  # noqa: BLE001 - scipy raises many types (ValueError, TypeError, zlib.error, ...) on junk
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    gt = mat.get("groundTruth")
    seg = getattr(gt, "Segmentation", None)
    if seg is None:
        names = sorted(k for k in mat if not k.startswith("_"))
        raise DataError(f"{path}: no groundTruth.Segmentation variable (variables: {names})")
    seg = np.asarray(seg)
    if seg.ndim != 2 or seg.size == 0 or not np.issubdtype(seg.dtype, np.number):
        raise DataError(f"{path}: groundTruth.Segmentation must be a non-empty numeric 2-D array, got {seg.shape}")
    bad = np.setdiff1d(np.unique(seg), [1, 2, 3, 4])
    if bad.size:
        raise DataError(f"{path}: unexpected Segmentation value(s) {bad[:5].tolist()}; CFD uses 1..4")
    return seg.astype(np.uint8)


def mat_instances(path: Path, image: Path, opts: CrackForestOptions) -> list[BoxAnnotation]:
    """Crack instances of one ground-truth file (see the module docstring for the value mapping)."""
    seg = read_segmentation(path)
    size = image_size(image)
    if size is not None and (seg.shape[1], seg.shape[0]) != size:
        raise DataError(f"{path}: Segmentation is {seg.shape[1]}x{seg.shape[0]} but image {image.name} is "
                        f"{size[0]}x{size[1]} (width x height)")
    crack = np.isin(seg, CRACK_VALUES[opts.extra_values])
    return mask_instances(crack, opts.label, min_area=opts.min_area, merge_gap=opts.merge_gap)


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield one record per ``groundTruth/*.mat`` (images without ground truth are not yielded).

    Args:
        root: the CrackForest folder (holding ``image/`` and ``groundTruth/``).
        **options: see ``CrackForestOptions``.

    Examples:
        >>> recs = list(convert(Path("crackforest"), extra_values="ignore"))  # doctest: +SKIP
    """
    opts = parse_options(CrackForestOptions, NAME, options)
    image_dir = require_dir(Path(root), opts.images, NAME, "images")
    gt_dir = require_dir(Path(root), opts.ground_truth, NAME, "ground_truth")
    images = index_images(image_dir)
    for mat in sorted(gt_dir.glob("*.mat")):
        image = images.get(mat.stem, image_dir / f"{mat.stem}.jpg")
        boxes, issues = parse_guarded(opts.on_error, mat_instances, mat, image, opts)
        yield make_record(NAME, image, boxes or [], mat, {}, issues)

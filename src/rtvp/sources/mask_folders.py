"""Mask-folder converter: the class is a folder, each image has a same-stem binary mask beside it.

Magnetic tile layout: ``MT_<Class>/Imgs/<stem>.jpg`` + ``MT_<Class>/Imgs/<stem>.png``. The native class name is the
folder name (``MT_Blowhole``). Masks are binarised with ``>= threshold`` (soft edges), split into 8-connected
components (``min_area`` drops specks, ``merge_gap`` optionally joins close fragments), one instance each with its
box and exact segmentation (see ``_masks``). An all-zero mask gives an image without boxes -- that is how the
defect-free ``MT_Free`` folder (and the few empty masks inside defect folders) come out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rtvp.errors import ConfigError, DataError
from rtvp.imaging import read_image
from rtvp.sources._common import abspath, image_size, make_record, parse_guarded, parse_options
from rtvp.sources._masks import mask_instances
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "mask_folders"


@dataclass(frozen=True)
class MaskFoldersOptions:
    """Options of the ``mask_folders`` source.

    Attributes:
        image_glob: glob (relative to the root) matching the images; files ending in ``mask_suffix`` are skipped.
        mask_suffix: the mask of ``<dir>/<stem>.<ext>`` is ``<dir>/<stem><mask_suffix>``.
        class_from: ``folder`` = the first folder under the root, ``parent`` = the image's own folder.
        threshold: mask pixels ``>= threshold`` are object (masks are read as 8-bit grey).
        min_area: drop components with fewer pixels.
        merge_gap: join components closer than this many pixels into one instance (0 = off).
        on_error: ``raise`` (default) a ``DataError`` on an unreadable/mismatched mask, or ``skip`` it.
    """

    image_glob: str = "**/*.jpg"
    mask_suffix: str = ".png"
    class_from: Literal["folder", "parent"] = "folder"
    threshold: int = 128
    min_area: int = 4
    merge_gap: int = 0
    on_error: Literal["raise", "skip"] = "raise"


def read_mask_instances(mask_path: Path, image_path: Path, label: str, opts: MaskFoldersOptions) -> list[BoxAnnotation]:
    """Decode ``mask_path`` and return its instances; ``DataError`` naming the mask when unreadable or mis-sized."""
    mask = read_image(mask_path, channels=1)[:, :, 0]
    size = image_size(image_path)
    if size is not None and (mask.shape[1], mask.shape[0]) != size:
        raise DataError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path.name} is "
                        f"{size[0]}x{size[1]} (width x height)")
    binary = mask >= opts.threshold
    if not binary.any():
        peak = int(mask.max())
        if peak > 0 and np.count_nonzero(mask == peak) == np.count_nonzero(mask):
            raise DataError(f"{mask_path}: binary mask with values 0/{peak} is below threshold {opts.threshold}; "
                            f"set the mask_folders option 'threshold: {peak}'")
        return []
    return mask_instances(binary, label, min_area=opts.min_area, merge_gap=opts.merge_gap)


def _class_of(image: Path, root: Path, class_from: str) -> str | None:
    rel = image.relative_to(root)
    if len(rel.parts) < 2:
        return None
    return rel.parts[0] if class_from == "folder" else rel.parts[-2]


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield one record per image matched by ``image_glob``, instances from its mask.

    Args:
        root: dataset folder (e.g. the magnetic-tile root holding ``MT_*/Imgs``).
        **options: see ``MaskFoldersOptions``.

    Examples:
        >>> recs = list(convert(Path("magnetic_tile"), image_glob="MT_*/Imgs/*.jpg"))  # doctest: +SKIP
    """
    opts = parse_options(MaskFoldersOptions, NAME, options)
    root = abspath(root)
    if not root.is_dir():
        raise ConfigError(f"{NAME} source: root {root} is not a folder")
    if opts.threshold < 1 or opts.threshold > 255:
        raise ConfigError(f"{NAME} source options.threshold: {opts.threshold} is outside 1..255")
    for image in sorted(root.glob(opts.image_glob)):
        if not image.is_file() or (image.name.endswith(opts.mask_suffix) and image.suffix != opts.mask_suffix):
            continue
        mask = image.with_name(image.stem + opts.mask_suffix)
        if mask == image:
            raise ConfigError(f"{NAME} source: mask_suffix '{opts.mask_suffix}' makes {image.name} its own mask; "
                              "use a suffix such as '_mask.png'")
        label = _class_of(image, root, opts.class_from)
        if label is None:
            yield make_record(NAME, image, [], None, {}, [f"{image}: not inside a class folder under {root}"])
            continue
        if not mask.is_file():
            yield make_record(NAME, image, [], None, {"class_folder": label}, [f"{mask}: mask file not found"])
            continue
        boxes, issues = parse_guarded(opts.on_error, read_mask_instances, mask, image, label, opts)
        yield make_record(NAME, image, boxes or [], mask, {"class_folder": label}, issues)

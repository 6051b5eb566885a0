"""Source converters: native dataset layouts -> ``ImageRecord`` streams. Importing this package registers all.

Formats: ``deeppcb``, ``voc``, ``mask_folders``, ``labelme``, ``crackforest``, ``coco``, ``yolo`` -- one module
each, called as ``SOURCES.get(fmt)(root, **options)``. Shared conventions (absolute paths, header-only sizes,
``DataError`` naming the file, ``on_error: skip``, ``meta["issues"]`` on records the builder must report and drop)
are documented in ``rtvp.sources._common``.
"""

from rtvp.sources import coco, crackforest, deeppcb, labelme, mask_folders, voc, yolo  # noqa: F401 - registers
from rtvp.sources._common import ISSUES, LabelError
from rtvp.sources.base import SOURCES, SourceConverter

__all__ = ["ISSUES", "SOURCES", "LabelError", "SourceConverter"]

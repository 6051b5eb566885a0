"""Source converters: native dataset layouts -> ``ImageRecord`` streams. Importing this package registers all."""

from rtvp.sources.base import SOURCES, SourceConverter

# Each converter module registers itself on import; list them explicitly so registration always runs.
# (Filled in as converters land: deeppcb, voc, mask_folders, labelme, crackforest, coco, yolo.)

__all__ = ["SOURCES", "SourceConverter"]

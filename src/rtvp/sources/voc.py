"""Pascal VOC converter: one ``<stem>.xml`` per image (possibly split over several folders), image found by stem.

Images and XMLs pair by file STEM, never by ``<filename>`` (NEU-DET has ``<filename>`` without extension, CPLID a
bare id); the image extension is whatever exists on disk. ``annotations`` may list several folders: their XMLs for
the same stem are merged (CPLID keeps the defect and insulator boxes in ``labels/defect`` and
``labels/insulator``). The class is ``<object><name>``; boxes are ``<bndbox>`` xmin/ymin/xmax/ymax as given (no
+1/-1 convention applied, no clipping). ``<size>`` is ignored: the size comes from the image header.
``<difficult>1</difficult>`` objects are kept by default (detectron2's VOC loader trains on them too; the shared
NEU-DET copy marks 72 of its 3,475 boxes) or dropped with ``difficult: drop`` (as Ultralytics' VOC conversion does).

An XML without an image, and (with ``unlabeled: report``) an image without any XML, become issue records.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtvp.errors import DataError
from rtvp.sources._common import index_images, make_record, parse_guarded, parse_options, require_dir, to_float
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "voc"


@dataclass(frozen=True)
class VOCOptions:
    """Options of the ``voc`` source.

    Attributes:
        images: image folder, relative to the source root.
        annotations: XML folder, or list of folders merged per stem, relative to the root.
        unlabeled: images that no XML covers: ``report`` them (issue records), ``empty`` (records without boxes,
            i.e. defect-free images) or ``skip`` them silently.
        on_error: ``raise`` (default) a ``DataError`` on a malformed XML, or ``skip`` it (issue record).
        difficult: ``keep`` (default) or ``drop`` the objects marked ``<difficult>1</difficult>``.
    """

    images: str = "JPEGImages"
    annotations: str | list[str] = "Annotations"
    unlabeled: Literal["report", "empty", "skip"] = "report"
    on_error: Literal["raise", "skip"] = "raise"
    difficult: Literal["keep", "drop"] = "keep"


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _is_difficult(obj: ET.Element, where: str) -> bool:
    node = obj.find("difficult")
    text = (node.text or "").strip() if node is not None else ""
    if text not in ("", "0", "1"):
        raise DataError(f"{where}: <difficult> is '{text}', expected 0 or 1")
    return text == "1"


def parse_xml(path: Path, drop_difficult: bool = False) -> list[BoxAnnotation]:
    """Parse one VOC XML into boxes; ``DataError`` naming the file (and line/object) when malformed.

    Args:
        path: the XML file.
        drop_difficult: leave out the objects marked ``<difficult>1</difficult>``.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}:{e.position[0]}: invalid XML ({e})") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read VOC XML ({e})") from None
    if root.tag != "annotation":
        raise DataError(f"{path}: root element is <{root.tag}>, expected <annotation> (Pascal VOC)")
    boxes = []
    for i, obj in enumerate(root.iter("object")):
        where = f"{path}: object {i}"
        name = _text(obj, "name", where)
        if _is_difficult(obj, f"{where} ('{name}')") and drop_difficult:
            continue
        bnd = obj.find("bndbox")
        if bnd is None:
            raise DataError(f"{where} ('{name}'): missing <bndbox>")
        x1, y1, x2, y2 = (to_float(_text(bnd, k, where), f"{where} <{k}>") for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(BoxAnnotation(bbox=(x1, y1, x2, y2), label=name))
    return boxes


def _parse_all(paths: list[Path], drop_difficult: bool) -> list[BoxAnnotation]:
    return [b for p in paths for b in parse_xml(p, drop_difficult)]


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield one record per image stem that has at least one XML (merged over ``annotations`` folders).

    Args:
        root: dataset folder.
        **options: see ``VOCOptions``.

    Examples:
        >>> list(convert(Path("cplid"), images="Defective_Insulators/images",  # doctest: +SKIP
        ...              annotations=["Defective_Insulators/labels/defect", "Defective_Insulators/labels/insulator"]))
    """
    opts = parse_options(VOCOptions, NAME, options)
    root = Path(root)
    image_dir = require_dir(root, opts.images, NAME, "images")
    ann_dirs = [opts.annotations] if isinstance(opts.annotations, str) else list(opts.annotations)
    xmls: dict[str, list[Path]] = {}
    for d in ann_dirs:
        for xml in sorted(require_dir(root, d, NAME, "annotations").glob("*.xml")):
            xmls.setdefault(xml.stem, []).append(xml)
    images = index_images(image_dir)
    for stem in sorted(set(xmls) | set(images)):
        files = xmls.get(stem, [])
        if not files:
            if opts.unlabeled == "skip":
                continue
            issue = [] if opts.unlabeled == "empty" else [f"{images[stem]}: no VOC XML for this image in {ann_dirs}"]
            yield make_record(NAME, images[stem], [], None, {}, issue)
            continue
        boxes, issues = parse_guarded(opts.on_error, _parse_all, files, opts.difficult == "drop")
        image = images.get(stem, image_dir / f"{stem}.jpg")
        meta = {"label_files": [str(f) for f in files]} if len(files) > 1 else {}
        yield make_record(NAME, image, boxes or [], files[0], meta, issues)

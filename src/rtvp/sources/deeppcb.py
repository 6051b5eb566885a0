"""DeepPCB converter: ``PCBData/group<G>/<G>_not/<id>.txt`` boxes on ``PCBData/group<G>/<G>/<id>_test.jpg``.

Label lines are ``x1 y1 x2 y2 type`` (the repo uses spaces, its README commas: split on ``[ ,]+``), pixels in the
640x640 frame; ``type`` 1..6 = open, short, mousebite, spur, copper, pin-hole (the dataset's ID table; 0 is
"background", unused, and rejected like any other id). Boxes are reported as given (the builder clips).

The defect-free ``<id>_temp.jpg`` templates are skipped unless ``templates: true`` (then each is an extra record
without boxes, ``meta["template_of"]`` = its pair id). The official split lists ``PCBData/trainval.txt`` and
``PCBData/test.txt`` (lines ``group<G>/<G>/<id>.jpg group<G>/<G>_not/<id>.txt``) set ``meta["official_split"]``
(``"trainval"``/``"test"``, ``None`` when listed in neither) and drive the ``split`` option.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rtvp.errors import ConfigError, DataError
from rtvp.sources._common import abspath, make_record, parse_guarded, parse_options, read_label_text, to_float
from rtvp.sources.base import SOURCES
from rtvp.structures import BoxAnnotation, ImageRecord

NAME = "deeppcb"
TYPES = {1: "open", 2: "short", 3: "mousebite", 4: "spur", 5: "copper", 6: "pin-hole"}
"""DeepPCB defect type id -> native class name (SOURCE.md ID table)."""

_SPLIT = re.compile(r"[ ,\t]+")


@dataclass(frozen=True)
class DeepPCBOptions:
    """Options of the ``deeppcb`` source.

    Attributes:
        split: which official pairs to yield: ``all``, ``trainval`` or ``test``.
        templates: also yield the defect-free ``_temp.jpg`` templates as records without boxes.
        on_error: ``raise`` (default) a ``DataError`` on a malformed label file, or ``skip`` it (issue record).
    """

    split: Literal["all", "trainval", "test"] = "all"
    templates: bool = False
    on_error: Literal["raise", "skip"] = "raise"


def parse_label_file(path: Path) -> list[BoxAnnotation]:
    """Parse one DeepPCB label file; ``DataError`` naming ``path:line`` on a malformed line or unknown type id."""
    text = read_label_text(path)
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = _SPLIT.split(line)
        where = f"{path}:{lineno}"
        if len(fields) != 5:
            raise DataError(f"{where}: expected 5 fields 'x1 y1 x2 y2 type', got {len(fields)}: {line[:80]!r}")
        x1, y1, x2, y2 = (to_float(v, where) for v in fields[:4])
        type_id = to_float(fields[4], where)
        if type_id not in TYPES:
            raise DataError(f"{where}: unknown defect type {fields[4]!r}; valid ids: {TYPES}")
        boxes.append(BoxAnnotation(bbox=(x1, y1, x2, y2), label=TYPES[int(type_id)]))
    return boxes


def _official_splits(pcb: Path) -> dict[str, str]:
    """Pair id (``<id>``) -> ``trainval``/``test`` from the official lists (missing lists give an empty map)."""
    out: dict[str, str] = {}
    for split in ("trainval", "test"):
        lst = pcb / f"{split}.txt"
        if not lst.is_file():
            continue
        for lineno, line in enumerate(lst.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            first = line.split()[0]
            stem = Path(first).stem
            if not stem:
                raise DataError(f"{lst}:{lineno}: expected 'group<G>/<G>/<id>.jpg group<G>/<G>_not/<id>.txt'")
            out[stem] = split
    return out


def _pcb_root(root: Path) -> Path:
    """The ``PCBData`` folder: ``root/PCBData`` or ``root`` itself."""
    root = abspath(root)
    if (root / "PCBData").is_dir():
        return root / "PCBData"
    if any(root.glob("group*")):
        return root
    raise ConfigError(f"deeppcb source: no PCBData/ or group*/ folder under {root}; point 'path' at the DeepPCB root")


@SOURCES.register(NAME)
def convert(root: Path, **options: Any) -> Iterator[ImageRecord]:
    """Yield DeepPCB test images with their defect boxes (and optionally the templates).

    Args:
        root: the DeepPCB folder (holding ``PCBData/``) or ``PCBData`` itself.
        **options: see ``DeepPCBOptions``.

    Examples:
        >>> recs = list(convert(Path("datasets/deeppcb"), split="test"))  # doctest: +SKIP
    """
    opts = parse_options(DeepPCBOptions, NAME, options)
    pcb = _pcb_root(Path(root))
    official = _official_splits(pcb)
    if opts.split != "all" and not official:
        raise ConfigError(f"deeppcb source: split '{opts.split}' needs {pcb}/trainval.txt and test.txt (not found)")
    for label in sorted(pcb.glob("group*/*_not/*.txt")):
        pair_id = label.stem
        split = official.get(pair_id)
        if opts.split != "all" and split != opts.split:
            continue
        image_dir = label.parent.parent / label.parent.name.removesuffix("_not")
        meta = {"official_split": split, "pair_id": pair_id, "group": label.parent.parent.name}
        boxes, issues = parse_guarded(opts.on_error, parse_label_file, label)
        yield make_record(NAME, image_dir / f"{pair_id}_test.jpg", boxes or [], label, meta, issues)
        if opts.templates:
            yield make_record(NAME, image_dir / f"{pair_id}_temp.jpg", [], None, {**meta, "template_of": pair_id})

"""Export a benchmark to formats other tools train on: Ultralytics YOLO (``data.yaml`` + labels) or plain COCO.

Both exports link (or copy) the benchmark's images instead of re-encoding them, and appear atomically: the
folder is built under a temporary name next to ``out`` and renamed at the end.

YOLO layout (Ultralytics detect format)::

    out/data.yaml                       path (absolute out dir), train: images/train, val: images/val, names {0: ...}
    out/images/{train,val}/<flat name>  symlink/copy of <bench>/<file_name>; flat name = path under images/ with
                                        "/" -> "__" (image id appended on the rare collision)
    out/labels/{train,val}/<stem>.txt   one "cls cx cy w h" line per box, normalised to [0, 1], 6 decimals;
                                        empty file for an image without boxes

``cls`` is the 0-based position of the category in id order, so the YOLO names are the benchmark's category names
(all of them, also for ``protocol="open"``, whose val split holds every class). Boxes are clipped to the image;
boxes that become empty are skipped.

``yolo-seg`` (Ultralytics segment format) writes the same layout with one ``cls x1 y1 x2 y2 ...`` polygon line per
instance (normalised, 6 decimals; see ``rtvp.bench.export_seg``). COCO layout::

    out/annotations/{train,val}.json    the split files, unchanged: ``file_name`` stays relative, now to ``out``
    out/images/...                      symlink/copy of every image at the same relative path as in the benchmark
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from rtvp.bench.export_seg import yolo_seg_labels
from rtvp.bench.stats import load_split
from rtvp.errors import ConfigError, DataError

Protocol = Literal["closed", "open"]
LinkMode = Literal["symlink", "copy"]


def _split_files(protocol: str) -> dict[str, str]:
    if protocol not in ("closed", "open"):
        raise ConfigError(f"export: protocol must be 'closed' or 'open', got {protocol!r}")
    return {"train": f"{protocol}_train", "val": f"{protocol}_val"}


def _place(src: Path, dst: Path, link: str) -> None:
    """Symlink (absolute target) or copy ``src`` to ``dst``; a missing source is a ``DataError``."""
    if not src.exists():
        raise DataError(f"{src}: benchmark image missing (rebuild the benchmark or fix its images/ links)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link == "symlink":
        os.symlink(os.path.abspath(src), dst)
    elif link == "copy":
        shutil.copyfile(src, dst)
    else:
        raise ConfigError(f"export: link must be 'symlink' or 'copy', got {link!r}")


@contextmanager
def atomic_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder (next to ``out``) that replaces ``out`` when the block succeeds, else is removed.

    Raises:
        ConfigError: ``out`` is a file, or a non-empty folder and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out}: folder exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f"{tmp.name}.old"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def yolo_labels(data: dict[str, Any]) -> dict[int, list[str]]:
    """YOLO label lines per image id for one COCO split, vectorised over all boxes.

    Args:
        data: a COCO dict (``images`` with width/height, ``annotations``, ``categories``).

    Returns:
        ``{image_id: ["cls cx cy w h", ...]}`` with every image id present (empty list for no boxes).
    """
    cat_index = {c["id"]: i for i, c in enumerate(sorted(data["categories"], key=lambda c: c["id"]))}
    sizes = {im["id"]: (float(im["width"]), float(im["height"])) for im in data["images"]}
    out: dict[int, list[str]] = {im["id"]: [] for im in data["images"]}
    anns = [a for a in data["annotations"] if not a.get("iscrowd", 0)]
    if not anns:
        return out
    try:
        boxes = np.array([a["bbox"][:4] for a in anns], dtype=np.float64).reshape(-1, 4)
        wh = np.array([sizes[a["image_id"]] for a in anns], dtype=np.float64)
        cls = [cat_index[a["category_id"]] for a in anns]
    except KeyError as e:
        raise DataError(f"annotation refers to unknown image/category id {e}") from e
    x1 = np.clip(boxes[:, 0], 0, wh[:, 0])
    y1 = np.clip(boxes[:, 1], 0, wh[:, 1])
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, wh[:, 0])
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, wh[:, 1])
    norm = np.stack([(x1 + x2) / 2 / wh[:, 0], (y1 + y2) / 2 / wh[:, 1], (x2 - x1) / wh[:, 0], (y2 - y1) / wh[:, 1]],
                    axis=1)
    keep = (x2 > x1) & (y2 > y1)
    for a, c, row, k in zip(anns, cls, norm, keep, strict=True):
        if k:
            out[a["image_id"]].append(f"{c} {row[0]:.6f} {row[1]:.6f} {row[2]:.6f} {row[3]:.6f}")
    return out


def _flat_names(images: list[dict[str, Any]]) -> dict[int, str]:
    names: dict[int, str] = {}
    used: set[str] = set()
    for im in images:
        rel = Path(im["file_name"])
        parts = rel.parts[1:] if rel.parts and rel.parts[0] == "images" else rel.parts
        name = "__".join(parts)
        if name in used:
            name = f"{Path(name).stem}__{im['id']}{rel.suffix}"
        used.add(name)
        names[im["id"]] = name
    return names


def export_yolo(bench_dir: str | Path, out: str | Path, protocol: Protocol = "closed", link: LinkMode = "symlink",
                overwrite: bool = False, segments: bool = False) -> Path:
    """Write an Ultralytics-compatible detection (or, with ``segments``, segmentation) dataset (module docstring).

    Args:
        bench_dir: benchmark root.
        out: output folder (created; must be empty or absent unless ``overwrite``).
        protocol: ``closed`` (closed_train/closed_val) or ``open`` (open_train/open_val).
        link: ``symlink`` (absolute links to the benchmark images) or ``copy``.
        overwrite: replace an existing non-empty ``out``.
        segments: write polygon lines (``yolo_seg_labels``) instead of box lines.

    Returns:
        path of ``out/data.yaml``.

    Examples:
        >>> export_yolo("bench", "bench_yolo")  # doctest: +SKIP
        PosixPath('bench_yolo/data.yaml')
    """
    bench_dir, out = Path(bench_dir), Path(out)
    files = _split_files(protocol)
    splits = {part: load_split(bench_dir, name) for part, name in files.items()}
    cats = sorted(splits["train"]["categories"], key=lambda c: c["id"])
    with atomic_dir(out, overwrite) as tmp:
        for part, data in splits.items():
            labels = yolo_seg_labels(data) if segments else yolo_labels(data)
            names = _flat_names(data["images"])
            (tmp / "labels" / part).mkdir(parents=True, exist_ok=True)
            (tmp / "images" / part).mkdir(parents=True, exist_ok=True)
            for im in data["images"]:
                name = names[im["id"]]
                _place(bench_dir / im["file_name"], tmp / "images" / part / name, link)
                text = "".join(line + "\n" for line in labels[im["id"]])
                (tmp / "labels" / part / f"{Path(name).stem}.txt").write_text(text, encoding="utf-8")
        meta = {"path": str(out.absolute()), "train": "images/train", "val": "images/val",
                "names": {i: c["name"] for i, c in enumerate(cats)}}
        kind = "segmentation" if segments else "detection"
        header = (f"# Ultralytics {kind} dataset exported by `rtvp data export` from {bench_dir.absolute()} "
                  f"({protocol})\n")
        (tmp / "data.yaml").write_text(header + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True),
                                       encoding="utf-8")
    return out / "data.yaml"


def export_coco(bench_dir: str | Path, out: str | Path, protocol: Protocol = "closed", link: LinkMode = "symlink",
                overwrite: bool = False) -> Path:
    """Write ``out/annotations/{train,val}.json`` + linked images with ``file_name`` relative to ``out``.

    Args:
        bench_dir: benchmark root.
        out: output folder (created; must be empty or absent unless ``overwrite``).
        protocol: ``closed`` or ``open`` (which pair of split files to export).
        link: ``symlink`` or ``copy`` for the images.
        overwrite: replace an existing non-empty ``out``.

    Returns:
        path of ``out/annotations``.
    """
    bench_dir, out = Path(bench_dir), Path(out)
    files = _split_files(protocol)
    with atomic_dir(out, overwrite) as tmp:
        placed: set[str] = set()
        for part, name in files.items():
            data = load_split(bench_dir, name)
            for im in data["images"]:
                rel = Path(im["file_name"])
                if rel.is_absolute() or ".." in rel.parts:
                    raise DataError(f"{bench_dir}/annotations/{name}.json: image {im['id']} file_name {rel} "
                                    "must be relative to the benchmark root")
                if str(rel) not in placed:
                    _place(bench_dir / rel, tmp / rel, link)
                    placed.add(str(rel))
            path = tmp / "annotations" / f"{part}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return out / "annotations"


def export_yolo_seg(bench_dir: str | Path, out: str | Path, protocol: Protocol = "closed",
                    link: LinkMode = "symlink", overwrite: bool = False) -> Path:
    """``export_yolo`` with polygon labels (Ultralytics segment format)."""
    return export_yolo(bench_dir, out, protocol=protocol, link=link, overwrite=overwrite, segments=True)


EXPORTERS = {"yolo": export_yolo, "yolo-seg": export_yolo_seg, "coco": export_coco}


def export_benchmark(bench_dir: str | Path, out: str | Path, fmt: str = "yolo", protocol: Protocol = "closed",
                     link: LinkMode = "symlink", overwrite: bool = False) -> Path:
    """Dispatch to ``export_yolo``/``export_coco`` by ``fmt``; an unknown format is a ``ConfigError``."""
    if fmt not in EXPORTERS:
        raise ConfigError(f"export: unknown format {fmt!r}; choose one of {sorted(EXPORTERS)}")
    return EXPORTERS[fmt](bench_dir, out, protocol=protocol, link=link, overwrite=overwrite)

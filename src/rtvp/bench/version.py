"""Derived benchmark versions: copies of a benchmark with some annotation files replaced.

Used by ``rtvp data autolabel`` (closed_train = expert + agreed automatic labels), ``rtvp data review import``
(reviewed boxes added) and the label-noise experiment (noisy training labels). The source benchmark is never
modified unless it is also the destination (an in-place review import).

Two kinds of copies:

- :func:`write_version`: a complete benchmark (``benchmark.yaml``, ``annotations/<split>.json``, ``images/``)
  whose images are per-file symlinks to the real image files (links resolved, so the copy survives the removal of
  its parent). Every file is written atomically and ``benchmark.yaml`` last, so a folder without it is an
  unfinished version; rerunning the writer completes it.
- :func:`scratch_bench`: a throw-away training benchmark (``images`` is one symlink to the parent's image folder).

``open_train`` of a new version is rebuilt from its ``closed_train`` (:func:`derive_open_train`): the parent's
open_train images, minus any that now hold an unseen class, with their seen-class annotations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from rtvp.errors import DataError
from rtvp.fileio import atomic_write_text, read_json

SPLITS = ("closed_train", "closed_val", "open_train", "open_val")


def read_coco(path: str | Path) -> dict[str, Any]:
    """Load a COCO file; errors name the file."""
    path = Path(path)
    data = read_json(path, "COCO file", fix="is its folder a benchmark built with `rtvp data build`?")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: not a COCO file (missing list '{key}')")
    return data


def read_splits(bench: str | Path) -> dict[str, dict[str, Any]]:
    """The four COCO files of a benchmark."""
    bench = Path(bench)
    if not (bench / "annotations").is_dir():
        raise DataError(f"{bench}: no annotations/ folder; pass a benchmark built with `rtvp data build`")
    return {s: read_coco(bench / "annotations" / f"{s}.json") for s in SPLITS}


def dump_coco(coco: dict[str, Any]) -> str:
    """Deterministic COCO JSON, one image / annotation / category per line (small diffs, byte-stable)."""
    def dumps(o: Any) -> str:
        return json.dumps(o, ensure_ascii=False, separators=(",", ":"))

    head = [f"{dumps(k)}:{dumps(v)}" for k, v in coco.items() if k not in ("categories", "images", "annotations")]
    body = [f"{dumps(k)}:[\n" + ",\n".join(dumps(x) for x in coco.get(k, [])) + "]"
            for k in ("categories", "images", "annotations")]
    return "{" + ",\n".join(head + body) + "}\n"


def derive_open_train(parent_open_train: dict[str, Any], closed_train: dict[str, Any]) -> dict[str, Any]:
    """open_train of a new version: parent open_train images (minus those holding an unseen class now), seen labels."""
    unseen = {c["id"] for c in closed_train["categories"] if c.get("split") == "unseen"}
    ids = {im["id"] for im in parent_open_train["images"]}
    holds_unseen = {a["image_id"] for a in closed_train["annotations"] if a["category_id"] in unseen}
    keep = ids - holds_unseen
    images = [im for im in closed_train["images"] if im["id"] in keep]
    anns = [a for a in closed_train["annotations"] if a["image_id"] in keep and a["category_id"] not in unseen]
    info = {**parent_open_train.get("info", {}), "split": "open_train"}
    return {"info": info, "licenses": parent_open_train.get("licenses", []),
            "categories": closed_train["categories"], "images": images, "annotations": anns}


def link_images(src: Path, dst: Path, file_names: list[str]) -> tuple[int, list[str]]:
    """Make ``dst/<file_name>`` a symlink to the real file behind ``src/<file_name>`` (idempotent).

    Returns:
        ``(links created, file names whose source is missing)``.
    """
    made, missing = 0, []
    for name in file_names:
        target, link = os.path.realpath(src / name), dst / name
        if not os.path.exists(target):
            missing.append(name)
            continue
        if os.path.lexists(link):
            if os.path.realpath(link) == target:
                continue
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)
        made += 1
    return made, missing


def _bump(version: Any, tag: str) -> str:
    v = str(version if version is not None else "0")
    return v if v.endswith(f"+{tag}") else f"{v}+{tag}"


def version_meta(parent_meta: dict[str, Any], splits: dict[str, dict], tag: str,
                 provenance: dict[str, Any]) -> dict[str, Any]:
    """``benchmark.yaml`` content of a derived version: bumped version, history entry, refreshed split counts."""
    meta = dict(parent_meta)
    meta["version"] = _bump(meta.get("version"), tag)
    history = [h for h in meta.get("history") or [] if h.get("tool") != provenance.get("tool") or
               h.get("from") != provenance.get("from")]
    meta["history"] = [*history, provenance]
    stats = dict(meta.get("stats") or {})
    stats["splits"] = {s: {"images": len(d["images"]), "annotations": len(d["annotations"])} for s, d in splits.items()}
    stats["annotations"] = len(splits["closed_train"]["annotations"]) + len(splits["closed_val"]["annotations"])
    meta["stats"] = stats
    return meta


def write_version(parent: str | Path, out: str | Path, splits: dict[str, dict[str, Any]], tag: str,
                  provenance: dict[str, Any], extra: dict[str, str] | None = None) -> Path:
    """Write a derived benchmark version to ``out`` (which may equal ``parent`` for an in-place update).

    Args:
        parent: the benchmark it derives from (``benchmark.yaml`` and images are taken from it).
        out: destination folder (created; existing files are replaced atomically one by one).
        splits: the four COCO files of the new version.
        tag: version suffix, e.g. "auto" or "reviewed".
        provenance: history entry recorded in ``benchmark.yaml`` (tool, parameters, counts).
        extra: more text files to write, relative path -> content (e.g. ``review/queue.json``).

    Returns:
        ``out``.
    """
    parent, out = Path(parent), Path(out)
    meta_path = parent / "benchmark.yaml"
    try:
        parent_meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise DataError(f"{meta_path}: not found; pass a benchmark built with `rtvp data build`") from None
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != parent.resolve():
        names = sorted({im["file_name"] for d in splits.values() for im in d["images"]})
        _, missing = link_images(parent, out, names)
        if missing:
            raise DataError(f"{parent}: {len(missing)} image(s) missing, e.g. {missing[:3]}; run `rtvp data check`")
    for rel, text in (extra or {}).items():
        atomic_write_text(out / rel, text)
    for s in SPLITS:
        atomic_write_text(out / "annotations" / f"{s}.json", dump_coco(splits[s]))
    meta = version_meta(parent_meta, splits, tag, provenance)
    atomic_write_text(out / "benchmark.yaml", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=120))
    return out


def scratch_bench(parent: str | Path, out: str | Path, replace: dict[str, dict[str, Any]]) -> Path:
    """A training-only copy of ``parent`` in ``out``: its annotation files with ``replace``'s instead.

    ``out/images`` is a single symlink to the parent's image folder; ``benchmark.yaml`` is copied.
    """
    parent, out = Path(parent), Path(out)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    images = out / "images"
    target = os.path.realpath(parent / "images")
    if os.path.lexists(images) and os.path.realpath(images) != target:
        images.unlink()
    if not os.path.lexists(images):
        os.symlink(target, images)
    for s in SPLITS:
        text = dump_coco(replace[s]) if s in replace else (parent / "annotations" / f"{s}.json").read_text("utf-8")
        atomic_write_text(out / "annotations" / f"{s}.json", text)
    if (parent / "benchmark.yaml").is_file():
        atomic_write_text(out / "benchmark.yaml", (parent / "benchmark.yaml").read_text("utf-8"))
    return out

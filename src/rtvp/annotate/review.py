"""Expert review of auto-annotation disagreements through Label Studio (``rtvp data review export|import``).

Why Label Studio JSON (rather than CVAT XML, which would also work): a Label Studio task is plain JSON that carries
the image reference, our own keys (``data.rtvp_image_id``) and pre-filled ``predictions`` whose regions keep the
``id`` we give them through review. Every decision can therefore be keyed by (image, region id) on the way back,
which is what makes the import idempotent; the boxes are in percent of the image, so no pixel-size guessing.

Review queue (``<bench>/review/queue.json``, written by ``rtvp data autolabel``)::

    {"format": "rtvp-review-queue", "version": 1, "categories": [{"id", "name", "text"}],
     "items": [{"id": "<image_id>-<k>", "image_id", "file_name", "width", "height", "scene",
                "reason": "one_model_only" | "class_conflict" | "low_agreement", "iou",
                "candidates": [{"model": "ov" | "expert", "bbox": [x, y, w, h], "score", "category_id"}],
                "status": "pending" | "reviewed", "decisions": {region_id: decision}}]}

Export: one task per image holding pending items; every candidate box is a predicted region with id
``<item id>-<model>`` (label = category name, note = reason, model and score). Label Studio serves the images
with ``LOCAL_FILES_SERVING_ENABLED=true LOCAL_FILES_DOCUMENT_ROOT=<bench>`` (default image URL prefix).

Import (Label Studio "JSON" export): per task, the latest non-cancelled annotation is the review. A predicted
region that is kept unchanged is **accepted** (its original box is kept exactly), one kept with moved corners
(> 0.5 px) or another label is **edited** (the reviewer's box and label), one deleted is **rejected** (dropped), and
a region the reviewer drew is **added**. Tasks without a review stay pending. The new labels go into closed_train
with ``provenance: {source: "expert", review, review_key: "<image_id>/<region id>", ...}``; labels from an earlier
import of the same images are replaced, so importing a file twice gives the same benchmark. Everything is
computed before anything is written, and each file is replaced atomically (``benchmark.yaml`` last), so an
interrupted import leaves the benchmark as it was (into ``--out``: the source untouched) and a rerun completes it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rtvp.bench.version import derive_open_train, read_splits, write_version
from rtvp.bench.writer import coco_annotation
from rtvp.errors import DataError
from rtvp.fileio import atomic_write_text, read_json

QUEUE = Path("review") / "queue.json"
LS_PREFIX = "/data/local-files/?d="
FROM, TO = "label", "image"
MOVE_TOL = 0.5  # pixels: a corner moved less than this is "unchanged" (percent round-trips)


def load_queue(path: str | Path) -> dict[str, Any]:
    """Read a review queue (a ``queue.json`` or the benchmark folder holding ``review/queue.json``)."""
    path = Path(path)
    path = path / QUEUE if path.is_dir() else path
    queue = read_json(path, "review queue", fix="run `rtvp data autolabel` first")
    if not isinstance(queue, dict) or queue.get("format") != "rtvp-review-queue":
        raise DataError(f"{path}: not an rtvp review queue (expected \"format\": \"rtvp-review-queue\")")
    return queue


def _region(rid: str, box: list[float], w: int, h: int, label: str, score: float | None = None,
            note: str = "") -> dict[str, Any]:
    x, y, bw, bh = (float(v) for v in box)
    r: dict[str, Any] = {"id": rid, "type": "rectanglelabels", "from_name": FROM, "to_name": TO,
                         "original_width": w, "original_height": h, "image_rotation": 0,
                         "value": {"x": 100 * x / w, "y": 100 * y / h, "width": 100 * bw / w, "height": 100 * bh / h,
                                   "rotation": 0, "rectanglelabels": [label]}}
    if score is not None:
        r["score"] = score
    if note:
        r["meta"] = {"text": [note]}
    return r


def to_labelstudio(queue: dict[str, Any], prefix: str = LS_PREFIX, include_reviewed: bool = False) -> list[dict]:
    """Label Studio tasks (one per image) with the queue's candidates as pre-filled predictions."""
    names = {c["id"]: c["name"] for c in queue["categories"]}
    by_image: dict[int, list[dict]] = defaultdict(list)
    for item in queue["items"]:
        if include_reviewed or item.get("status", "pending") == "pending":
            by_image[item["image_id"]].append(item)
    tasks = []
    for image_id in sorted(by_image):
        items = by_image[image_id]
        first = items[0]
        w, h = first["width"], first["height"]
        result, scores = [], []
        for item in items:
            for c in item["candidates"]:
                note = f"{item['reason']}: {c['model']} {c['score']:.2f}"
                result.append(_region(f"{item['id']}-{c['model']}", c["bbox"], w, h, names[c["category_id"]],
                                      c["score"], note))
                scores.append(c["score"])
        reasons = ", ".join(sorted({i["reason"] for i in items}))
        tasks.append({"data": {"image": prefix + first["file_name"], "rtvp_image_id": image_id,
                               "file_name": first["file_name"], "scene": first.get("scene", ""), "reasons": reasons},
                      "predictions": [{"model_version": "rtvp-autolabel", "score": sum(scores) / len(scores),
                                       "result": result}]})
    return tasks


def label_config(queue: dict[str, Any]) -> str:
    """Label Studio labeling config (XML) matching the exported tasks."""
    labels = "\n".join(f'    <Label value="{_xml(c["name"])}"/>' for c in queue["categories"])
    return (f'<View>\n  <Header value="$reasons"/>\n  <Image name="{TO}" value="$image" zoom="true"/>\n'
            f'  <RectangleLabels name="{FROM}" toName="{TO}">\n{labels}\n  </RectangleLabels>\n</View>\n')


def _xml(s: str) -> str:
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def export_labelstudio(source: str | Path, out: str | Path, prefix: str = LS_PREFIX,
                       include_reviewed: bool = False) -> tuple[Path, int, int]:
    """Write the queue of ``source`` (benchmark folder or queue file) as Label Studio tasks to ``out``.

    Also writes the labeling config next to it (``<out stem>.xml``).

    Returns:
        ``(out, tasks, regions)``.
    """
    queue, out = load_queue(source), Path(out)
    tasks = to_labelstudio(queue, prefix, include_reviewed)
    atomic_write_text(out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(out.with_suffix(".xml"), label_config(queue))
    return out, len(tasks), sum(len(t["predictions"][0]["result"]) for t in tasks)


def _latest_review(task: dict[str, Any]) -> dict[str, Any] | None:
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("id", ""))))


def _reviewed_box(r: dict[str, Any], w: int, h: int, where: str) -> list[float]:
    """Pixel ``[x1, y1, x2, y2]`` of a Label Studio rectangle (percent of the image), clipped to the image."""
    v = r.get("value") or {}
    try:
        x, y, bw, bh = (float(v[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: rectangle needs numeric value.x/y/width/height, got {v}") from None
    if abs(float(v.get("rotation") or 0.0)) > 1e-6:
        raise DataError(f"{where}: rotated rectangle ({v['rotation']} deg); boxes must be axis-aligned")
    w, h = int(r.get("original_width") or w), int(r.get("original_height") or h)
    x1, y1 = max(0.0, x * w / 100), max(0.0, y * h / 100)
    x2, y2 = min(float(w), (x + bw) * w / 100), min(float(h), (y + bh) * h / 100)
    if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
        raise DataError(f"{where}: degenerate or out-of-image rectangle {v}")
    return [x1, y1, x2, y2]


def _label(r: dict[str, Any], by_name: dict[str, int], where: str) -> int:
    labels = (r.get("value") or {}).get("rectanglelabels") or []
    if len(labels) != 1 or labels[0] not in by_name:
        raise DataError(f"{where}: label {labels} is not exactly one of the benchmark's classes {sorted(by_name)}")
    return by_name[labels[0]]


def decide(task: dict[str, Any], items: list[dict], by_name: dict[str, int], where: str) -> list[dict]:
    """Decisions of one reviewed task: ``[{"region", "decision", "category_id", "xyxy", "item"}]`` (sorted)."""
    review = _latest_review(task)
    if review is None:
        return []
    first = items[0]
    w, h = first["width"], first["height"]
    originals = {f"{it['id']}-{c['model']}": (it, c) for it in items for c in it["candidates"]}
    out, seen = [], set()
    for k, r in enumerate(review.get("result") or []):
        if r.get("type") != "rectanglelabels":
            continue
        rid, rwhere = str(r.get("id", f"#{k}")), f"{where} region {r.get('id', k)}"
        seen.add(rid)
        xyxy, cat = _reviewed_box(r, w, h, rwhere), _label(r, by_name, rwhere)
        if rid not in originals:
            out.append({"region": rid, "decision": "added", "category_id": cat, "xyxy": xyxy, "item": None})
            continue
        it, c = originals[rid]
        x, y, bw, bh = c["bbox"]
        moved = max(abs(a - b) for a, b in zip(xyxy, (x, y, x + bw, y + bh), strict=True)) > MOVE_TOL
        edited = moved or cat != c["category_id"]
        out.append({"region": rid, "decision": "edited" if edited else "accepted", "category_id": cat,
                    "xyxy": xyxy if edited else [x, y, x + bw, y + bh], "item": it, "candidate": c})
    out += [{"region": rid, "decision": "rejected", "item": it}
            for rid, (it, _) in originals.items() if rid not in seen]
    return sorted(out, key=lambda d: d["region"])


def _tasks(path: Path) -> list[dict]:
    tasks = read_json(path, "reviewed Label Studio export")
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a Label Studio JSON export (a list of tasks), got {type(tasks).__name__}")
    for i, t in enumerate(tasks):
        if not isinstance(t, dict) or "rtvp_image_id" not in (t.get("data") or {}):
            raise DataError(f"{path}: task #{i} has no data.rtvp_image_id; import a file exported by "
                            "`rtvp data review export` (Label Studio 'JSON' export format)")
    return tasks


def _annotation(d: dict, ann_id: int, image: dict, task_id: Any) -> dict[str, Any]:
    ann = coco_annotation(ann_id, image["id"], d["category_id"], d["xyxy"], [], image["width"], image["height"])
    cand, item = d.get("candidate") or {}, d.get("item") or {}
    ann["provenance"] = {"source": "expert", "review": d["decision"], "review_key": f"{image['id']}/{d['region']}",
                         "task": task_id, "reason": item.get("reason"), "model": cand.get("model"),
                         "score": cand.get("score")}
    return ann


def apply_review(file: str | Path, bench: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Apply a reviewed Label Studio export to ``bench`` and write the result to ``out`` (default: ``bench``).

    Returns:
        Counts: ``{"tasks", "reviewed_images", "accepted", "edited", "rejected", "added", "pending", "out"}``.
    """
    file, bench = Path(file), Path(bench)
    out = Path(out) if out is not None else bench
    tasks, queue, splits = _tasks(file), load_queue(bench), read_splits(bench)
    train = splits["closed_train"]
    by_name = {c["name"]: c["id"] for c in train["categories"]}
    items_by_image: dict[int, list[dict]] = defaultdict(list)
    for it in queue["items"]:
        items_by_image[it["image_id"]].append(it)
    images = {im["id"]: im for im in train["images"]}
    decided: dict[int, tuple[Any, list[dict]]] = {}
    for i, task in enumerate(tasks):
        image_id = task["data"]["rtvp_image_id"]
        where = f"{file}: task #{i} (image {image_id})"
        if image_id not in images or image_id not in items_by_image:
            raise DataError(f"{where}: image is not in {bench}'s closed_train review queue; wrong --bench?")
        decisions = decide(task, items_by_image[image_id], by_name, where)
        if decisions:
            decided[image_id] = (task.get("id"), decisions)
    keep = [a for a in train["annotations"] if not (a.get("provenance", {}).get("review_key") and
                                                    a["image_id"] in decided)]
    next_id = max((a["id"] for a in keep), default=0) + 1
    counts = {"accepted": 0, "edited": 0, "rejected": 0, "added": 0}
    for image_id in sorted(decided):
        task_id, decisions = decided[image_id]
        for d in decisions:
            counts[d["decision"]] += 1
            if d["decision"] != "rejected":
                keep.append(_annotation(d, next_id, images[image_id], task_id))
                next_id += 1
        for it in items_by_image[image_id]:
            it["status"] = "reviewed"
            it["decisions"] = {d["region"]: d["decision"] for d in decisions if d["item"] is it}
    for im in train["images"]:
        if im["id"] in decided:
            im["reviewed"] = True
    splits["closed_train"] = {**train, "annotations": sorted(keep, key=lambda a: (a["image_id"], a["id"]))}
    splits["open_train"] = derive_open_train(splits["open_train"], splits["closed_train"])
    summary = {"tool": "review", "from": str(file.resolve()), "tasks": len(tasks), "reviewed_images": len(decided),
               **counts, "pending": sum(it.get("status", "pending") == "pending" for it in queue["items"])}
    write_version(bench, out, splits, "reviewed", summary,
                  {str(QUEUE): json.dumps(queue, indent=1, ensure_ascii=False) + "\n"})
    return {**summary, "out": str(out)}

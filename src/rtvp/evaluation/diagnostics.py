"""Why the open protocol fails: localization vs recognition of the unseen classes.

- **Class-agnostic recall** (:func:`agnostic_recall`): the fraction of unseen ground-truth boxes that some prediction
  among the image's top 100 (by score, any label) covers at IoU >= 0.5. Low: the model never proposes the defect.
- **Oracle-box zero-shot accuracy** (:func:`oracle_accuracy`): for each unseen ground-truth box, the model's region
  embedding at that box (pooled over the anchors whose predicted boxes match it, as exemplar prompts are:
  ``rtvp.predict.exemplars.pool_regions``) is classified against the class texts of its scene and of the whole
  benchmark; top-1 accuracy next to the chance level (1 / number of candidates, averaged over the boxes). Low with
  high recall: the model finds the defect but cannot name it.

Both land in ``rtvp val --json`` (keys ``agnostic_AR100_50``, ``oracle_top1_scene``, ``oracle_top1_all`` and their
``oracle_chance_*``; per unseen class in ``per_class``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from rtvp.boxes import iou_xywh
from rtvp.models.decode import decode_boxes
from rtvp.predict.exemplars import pool_regions
from rtvp.predict.loading import PromptedModel


def agnostic_recall(gt: dict[str, Any], results: Sequence[dict[str, Any]], category_ids: Iterable[int],
                    iou: float = 0.5, max_dets: int = 100) -> dict[str, Any]:
    """Class-agnostic recall of the ground truth of ``category_ids``.

    Args:
        gt: COCO ground truth (crowd boxes are ignored).
        results: COCO results (any ``category_id`` counts).
        category_ids: the classes whose boxes are to be found (e.g. the unseen ones).
        iou: IoU threshold.
        max_dets: predictions per image considered, highest scores first.

    Returns:
        ``{"agnostic_AR100_50": recall or None without boxes, "agnostic_instances": n,
        "per_class": {name: {"agnostic_recall", "instances"}}}`` (the key names ``100`` and ``50`` for the defaults).
    """
    wanted = set(category_ids)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    boxes: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    for a in gt["annotations"]:
        if a["category_id"] in wanted and not a.get("iscrowd", 0):
            boxes[a["image_id"]].append((a["category_id"], a["bbox"]))
    preds: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if r["image_id"] in boxes:
            preds[r["image_id"]].append(r)
    found, total = defaultdict(int), defaultdict(int)
    for image_id, gts in boxes.items():
        top = sorted(preds[image_id], key=lambda r: -r["score"])[:max_dets]
        hit = [False] * len(gts)
        if top:  # COCO xywh on both sides
            hit = (iou_xywh([b for _, b in gts], [r["bbox"] for r in top]).max(1) >= iou).tolist()
        for (cid, _), h in zip(gts, hit, strict=True):
            total[cid] += 1
            found[cid] += int(h)
    n = sum(total.values())
    return {f"agnostic_AR{max_dets}_{round(100 * iou)}": sum(found.values()) / n if n else None,
            "agnostic_instances": n,
            "per_class": {names[c]: {"agnostic_recall": found[c] / total[c], "instances": total[c]} for c in total}}


@torch.no_grad()
def oracle_accuracy(prompted: PromptedModel, dataset: Any, categories: Sequence[dict[str, Any]],
                    batch: int = 8, iou_pooling: bool = True) -> dict[str, Any]:
    """Oracle-box zero-shot top-1 accuracy of the unseen ground truth.

    Args:
        prompted: the RTVPNet prompted with the texts of ``categories`` (in that order).
        dataset: the un-augmented split (``DetectionDataset``; its ``categories`` are ``categories``).
        categories: every benchmark category (``split``, ``scene``, ``name``).
        batch: images per forward pass.
        iou_pooling: pool over the anchors whose predicted boxes match the GT box (False: every anchor centre
            inside it).

    Returns:
        ``{"oracle_top1_scene", "oracle_chance_scene", "oracle_top1_all", "oracle_chance_all", "oracle_instances",
        "per_class": {name: {"oracle_top1_scene", "oracle_top1_all", "instances"}}}`` (None without unseen boxes).
    """
    scenes: dict[str, int] = {}
    scene_of = torch.tensor([scenes.setdefault(str(c.get("scene", "")), len(scenes)) for c in categories])
    unseen = torch.tensor([c.get("split", "seen") == "unseen" for c in categories])
    device = next(prompted.parameters()).device
    was_training = prompted.model.training
    prompted.eval()
    stats = {k: [] for k in ("cls", "scene_ok", "all_ok", "scene_n")}
    try:
        for b in DataLoader(dataset, batch_size=batch, shuffle=False, collate_fn=dataset.collator):
            out = prompted(b.images.to(device))
            for i in range(b.images.shape[0]):
                real = b.gt_mask[i]
                cls = b.vocab_ids[b.gt_labels[i][real]]
                keep = unseen[cls]
                if not keep.any():
                    continue
                cls = cls[keep]
                pred = decode_boxes(out.box_dist[i].float(), out.anchors.float(), out.strides.float()) \
                    if iou_pooling else None
                emb = pool_regions(out.embeddings[i].float(), out.anchors.float(),
                                   b.gt_boxes[i][real][keep].to(device).float(), pred)
                sims = (emb @ out.text[i].float().T).cpu()  # (M, K)
                same = scene_of[None, :] == scene_of[cls][:, None]  # (M, K) candidates of the box's scene
                stats["cls"].append(cls)
                stats["all_ok"].append(sims.argmax(1) == cls)
                stats["scene_ok"].append(sims.masked_fill(~same, float("-inf")).argmax(1) == cls)
                stats["scene_n"].append(same.sum(1))
    finally:
        prompted.train(was_training)
    return _oracle_summary(stats, categories)


def _oracle_summary(stats: dict[str, list[torch.Tensor]], categories: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if not stats["cls"]:
        return {"oracle_top1_scene": None, "oracle_chance_scene": None, "oracle_top1_all": None,
                "oracle_chance_all": None, "oracle_instances": 0, "per_class": {}}
    cls, all_ok, scene_ok = torch.cat(stats["cls"]), torch.cat(stats["all_ok"]), torch.cat(stats["scene_ok"])
    per_class = {}
    for c in cls.unique().tolist():
        m = cls == c
        per_class[categories[c]["name"]] = {"oracle_top1_scene": scene_ok[m].float().mean().item(),
                                            "oracle_top1_all": all_ok[m].float().mean().item(),
                                            "instances": int(m.sum())}
    return {"oracle_top1_scene": scene_ok.float().mean().item(),
            "oracle_chance_scene": (1.0 / torch.cat(stats["scene_n"]).float()).mean().item(),
            "oracle_top1_all": all_ok.float().mean().item(), "oracle_chance_all": 1.0 / len(categories),
            "oracle_instances": int(cls.numel()), "per_class": per_class}


def merge_diagnostics(metrics: dict[str, Any], *parts: dict[str, Any]) -> dict[str, Any]:
    """Add diagnostics to ``rtvp val`` metrics: headline keys at the top, per-class keys into ``per_class``."""
    for part in parts:
        for key, value in part.items():
            if key != "per_class":
                metrics[key] = value
        for name, values in part.get("per_class", {}).items():
            row = metrics["per_class"].setdefault(name, {})
            row.update({k: v for k, v in values.items() if k != "instances"})
    return metrics


__all__ = ["agnostic_recall", "merge_diagnostics", "oracle_accuracy"]

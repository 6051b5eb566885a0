"""Evaluation plots: per-class PR curves and a detection confusion matrix (matplotlib, Agg backend)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.boxes import iou_xywh


def confusion_matrix(gt: dict, predictions: list[dict], conf: float = 0.25, iou: float = 0.5) -> np.ndarray:
    """Detection confusion matrix ``(C + 1, C + 1)``: rows = predicted class, columns = true class.

    The last row/column is background: a missed GT box counts in (background, true class); an unmatched
    prediction in (predicted class, background). Boxes are matched one-to-one, class-agnostic, greedily by IoU.
    Category order is ``gt["categories"]`` order.
    """
    index = {c["id"]: i for i, c in enumerate(gt["categories"])}
    n = len(index)
    matrix = np.zeros((n + 1, n + 1), dtype=np.int64)
    gts, dets = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        gts[a["image_id"]].append((index[a["category_id"]], a["bbox"]))
    for p in predictions:
        if p["score"] >= conf and p["category_id"] in index:
            dets[p["image_id"]].append((index[p["category_id"]], p["bbox"]))
    for image_id in set(gts) | set(dets):
        g, d = gts.get(image_id, []), dets.get(image_id, [])
        g_cls = np.array([c for c, _ in g], dtype=np.int64)
        d_cls = np.array([c for c, _ in d], dtype=np.int64)
        matched_g, matched_d = _greedy_match(np.array([b for _, b in g]).reshape(-1, 4),
                                             np.array([b for _, b in d]).reshape(-1, 4), iou)
        np.add.at(matrix, (d_cls[matched_d], g_cls[matched_g]), 1)
        np.add.at(matrix, (np.full(len(g) - len(matched_g), n), np.delete(g_cls, matched_g)), 1)
        np.add.at(matrix, (np.delete(d_cls, matched_d), np.full(len(d) - len(matched_d), n)), 1)
    return matrix


def _greedy_match(g: np.ndarray, d: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches with IoU >= thr, highest IoU first. Returns index arrays (gt, det)."""
    if len(g) == 0 or len(d) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ious = iou_xywh(g, d)
    gi, di = np.nonzero(ious >= thr)
    order = np.argsort(-ious[gi, di], kind="stable")
    used_g, used_d, mg, md = set(), set(), [], []
    for k in order:  # pairs above threshold only: a handful per image
        if gi[k] not in used_g and di[k] not in used_d:
            used_g.add(gi[k])
            used_d.add(di[k])
            mg.append(gi[k])
            md.append(di[k])
    return np.array(mg, dtype=np.int64), np.array(md, dtype=np.int64)


def plot_confusion(matrix: np.ndarray, names: list[str], path: Path, normalize: bool = True) -> Path:
    """Save the confusion matrix as a PNG (column-normalised when ``normalize``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = matrix.astype(np.float64)
    if normalize:
        m = m / np.maximum(m.sum(0, keepdims=True), 1)
    labels = [*names, "background"]
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(m, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pr(recall: np.ndarray, precision: np.ndarray, names: list[str], path: Path) -> Path:
    """Save per-class precision-recall curves (``precision (K, R)``) and their mean as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, p in zip(names, precision, strict=True):
        if np.isfinite(p).any():
            ax.plot(recall, p, linewidth=0.8, label=f"{name} {np.nanmean(p):.3f}")
    if np.isfinite(precision).any():
        ax.plot(recall, np.nanmean(precision, axis=0), color="k", linewidth=2, label="all classes")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title="PR @ IoU 0.5")
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_eval_plots(gt: dict, predictions: list[dict], evaluator: Any, out_dir: Path) -> list[Path]:
    """Write ``pr_curve.png`` and ``confusion_matrix.png`` into ``out_dir``."""
    from rtvp.evaluation.metrics import pr_curves

    cats = {c["id"]: c["name"] for c in gt["categories"]}
    recall, precision = pr_curves(evaluator)
    names = [cats[c] for c in evaluator.params.catIds]
    return [
        plot_pr(recall, precision, names, out_dir / "pr_curve.png"),
        plot_confusion(confusion_matrix(gt, predictions), [c["name"] for c in gt["categories"]],
                       out_dir / "confusion_matrix.png"),
    ]

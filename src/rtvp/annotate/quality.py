"""Annotation quality of a candidate COCO file against a reference one (paper 001 §3.1.3, Table II).

Typical use: the reference is an expert's labelling, the candidate the automatic labels of the same images
(``rtvp data autolabel``). Per image, reference and candidate boxes are matched **one-to-one, class-agnostic** by
the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) maximising the summed IoU; assigned pairs with
IoU > 0 are the *matched pairs* (an assigned pair with IoU 0 does not overlap at all and counts as unmatched). Then:

- ``kappa``: Cohen's kappa of the class labels of the matched pairs (labels compared by category *name*, so the
  two files may number their categories differently): ``(p_o - p_e) / (1 - p_e)`` from the pairs' confusion table.
  With a single label on both sides and perfect agreement (``p_e = 1``) it is 1.0; without pairs it is ``None``.
- ``mean_iou``: mean IoU of the matched pairs.
- ``precision[t]`` / ``recall[t]`` for t in 0.5, 0.75, 0.95: a candidate box is a true positive at t when its
  matched reference box has IoU >= t (class-agnostic); precision = TP / candidate boxes, recall = TP / reference
  boxes.
- ``anova_p``: one-way ANOVA (``scipy.stats.f_oneway``) of the matched IoUs grouped by image ``scene``; scenes with
  fewer than 2 pairs are left out, and with fewer than 2 scenes left (or zero variance) it is ``None``. A large p
  means no evidence of a systematic quality difference between scenes (the paper reports p = 0.12).
- ``per_scene``: the same figures per scene.

Images are joined on ``file_name`` when every image of both files has one, else on ``id``; only images present in
both files are compared (the counts of the others are reported).
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtvp.boxes import iou_xywh
from rtvp.errors import DataError
from rtvp.evaluation.evaluator import load_json
from rtvp.fileio import atomic_write_text

THRESHOLDS = (0.5, 0.75, 0.95)


@dataclass
class Matches:
    """Matched box pairs of two COCO files, flattened over images.

    Attributes:
        iou: ``(P,)`` IoU of each matched pair.
        ref_labels: ``(P,)`` reference category name of each pair.
        cand_labels: ``(P,)`` candidate category name of each pair.
        scenes: ``(P,)`` scene of each pair's image.
        counts: scene -> ``{"images", "reference", "candidate"}`` box and image counts (matched or not).
        only_reference: images only in the reference file.
        only_candidate: images only in the candidate file.
        classes: distinct class names among the compared boxes of both files.
    """

    iou: np.ndarray
    ref_labels: np.ndarray
    cand_labels: np.ndarray
    scenes: np.ndarray
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    only_reference: int = 0
    only_candidate: int = 0
    classes: int = 0


def match_boxes(ref_xywh: np.ndarray, cand_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one class-agnostic matching maximising the summed IoU; pairs with IoU 0 are dropped.

    Args:
        ref_xywh: ``(N, 4)`` reference boxes ``[x, y, w, h]``.
        cand_xywh: ``(M, 4)`` candidate boxes.

    Returns:
        ``(ref_index (P,), cand_index (P,), iou (P,))`` with P <= min(N, M).
    """
    from scipy.optimize import linear_sum_assignment

    if len(ref_xywh) == 0 or len(cand_xywh) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    ious = iou_xywh(np.asarray(ref_xywh, float).reshape(-1, 4), np.asarray(cand_xywh, float).reshape(-1, 4))
    ri, ci = linear_sum_assignment(ious, maximize=True)
    keep = ious[ri, ci] > 0
    return ri[keep].astype(np.int64), ci[keep].astype(np.int64), ious[ri[keep], ci[keep]]


def cohen_kappa(a: np.ndarray | list, b: np.ndarray | list) -> float | None:
    """Cohen's kappa of two raters' labels (any hashable labels).

    Returns:
        kappa in [-1, 1]; 1.0 for perfect agreement on a single label; ``None`` without labels.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"cohen_kappa: {a.shape} vs {b.shape} labels")
    n = len(a)
    if n == 0:
        return None
    _, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    k = int(inv.max()) + 1
    table = np.zeros((k, k), dtype=np.float64)
    np.add.at(table, (inv[:n], inv[n:]), 1.0)
    po = np.trace(table) / n
    pe = float(table.sum(1) @ table.sum(0)) / n**2
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return float((po - pe) / (1.0 - pe))


def anova(groups: dict[str, np.ndarray]) -> tuple[float | None, float | None]:
    """One-way ANOVA over groups with at least 2 values; ``(F, p)`` or ``(None, None)`` when undefined."""
    from scipy.stats import f_oneway

    kept = [np.asarray(v, float) for _, v in sorted(groups.items()) if len(v) >= 2]
    if len(kept) < 2:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns nan / inf
        f, p = f_oneway(*kept)
    f, p = float(f), float(p)
    return (None if np.isnan(f) else f), (None if np.isnan(p) else p)


def _index(coco: dict[str, Any], where: str) -> tuple[dict[Any, dict], dict[Any, list], dict[int, str], bool]:
    """``(images by id, annotations by image id, category name by id, every image has file_name)``."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DataError(f"{where}: not a COCO file (missing list '{key}')")
    names = {c["id"]: str(c.get("name") or c.get("text") or c["id"]) for c in coco["categories"]}
    images = {im["id"]: im for im in coco["images"]}
    anns: dict[Any, list] = defaultdict(list)
    for k, a in enumerate(coco["annotations"]):
        if a.get("image_id") not in images:
            raise DataError(f"{where}: annotation #{k} (id {a.get('id')}) refers to unknown image {a.get('image_id')}")
        if a.get("category_id") not in names:
            raise DataError(f"{where}: annotation #{k} (id {a.get('id')}) has unknown category {a.get('category_id')}")
        anns[a["image_id"]].append(a)
    return images, anns, names, all("file_name" in im for im in coco["images"])


def _keyed(images: dict[Any, dict], by_name: bool, where: str) -> dict[Any, Any]:
    """Image key (file_name or id) -> image id; duplicate keys are an error."""
    out: dict[Any, Any] = {}
    for iid, im in images.items():
        key = im["file_name"] if by_name else iid
        if key in out:
            raise DataError(f"{where}: image {key!r} appears twice")
        out[key] = iid
    return out


def match_files(reference: str | Path | dict, candidate: str | Path | dict,
                annotation_source: str | None = None) -> Matches:
    """Match the boxes of two COCO files image by image (see the module docstring).

    Args:
        reference: reference COCO (path or dict), e.g. expert labels.
        candidate: candidate COCO (path or dict), e.g. automatic labels.
        annotation_source: keep only candidate images whose ``annotation_source`` field equals this (e.g. "auto"
            for the auto-labelled images of an ``rtvp data autolabel`` benchmark).

    Raises:
        DataError: unreadable or malformed files, or no image in common.
    """
    ref_where = str(reference) if isinstance(reference, (str, Path)) else "reference"
    cand_where = str(candidate) if isinstance(candidate, (str, Path)) else "candidate"
    r_imgs, r_anns, r_names, r_fn = _index(load_json(reference, "reference"), ref_where)
    c_imgs, c_anns, c_names, c_fn = _index(load_json(candidate, "candidate"), cand_where)
    if annotation_source is not None:
        c_imgs = {k: v for k, v in c_imgs.items() if v.get("annotation_source") == annotation_source}
    by_name = r_fn and c_fn
    r_keys, c_keys = _keyed(r_imgs, by_name, ref_where), _keyed(c_imgs, by_name, cand_where)
    common = sorted(set(r_keys) & set(c_keys), key=str)
    if not common:
        raise DataError(f"{ref_where} and {cand_where} have no image in common (joined on "
                        f"{'file_name' if by_name else 'id'}); compare two labellings of the same images")
    iou, rl, cl, sc, names = [], [], [], [], set()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"images": 0, "reference": 0, "candidate": 0})
    for key in common:
        rid, cid = r_keys[key], c_keys[key]
        scene = str(r_imgs[rid].get("scene") or c_imgs[cid].get("scene") or "unknown")
        ra, ca = r_anns.get(rid, []), c_anns.get(cid, [])
        ri, ci, ious = match_boxes(np.array([a["bbox"] for a in ra], float).reshape(-1, 4),
                                   np.array([a["bbox"] for a in ca], float).reshape(-1, 4))
        iou.append(ious)
        rl += [r_names[ra[i]["category_id"]] for i in ri]
        cl += [c_names[ca[i]["category_id"]] for i in ci]
        sc += [scene] * len(ri)
        names |= {r_names[a["category_id"]] for a in ra} | {c_names[a["category_id"]] for a in ca}
        c = counts[scene]
        c["images"] += 1
        c["reference"] += len(ra)
        c["candidate"] += len(ca)
    return Matches(np.concatenate(iou) if iou else np.zeros(0), np.array(rl, dtype=object),
                   np.array(cl, dtype=object), np.array(sc, dtype=object), dict(sorted(counts.items())),
                   len(set(r_keys) - set(c_keys)), len(set(c_keys) - set(r_keys)), len(names))


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _figures(iou: np.ndarray, rl: np.ndarray, cl: np.ndarray, n_ref: int, n_cand: int,
             thresholds: tuple[float, ...]) -> dict[str, Any]:
    tp = {f"{t:g}": int((iou >= t).sum()) for t in thresholds}
    return {
        "kappa": cohen_kappa(rl, cl),
        "mean_iou": float(iou.mean()) if len(iou) else None,
        "precision": {k: _ratio(v, n_cand) for k, v in tp.items()},
        "recall": {k: _ratio(v, n_ref) for k, v in tp.items()},
        "label_accuracy": float((rl == cl).mean()) if len(iou) else None,
        "matched": len(iou),
        "reference": n_ref,
        "candidate": n_cand,
    }


def summarize(m: Matches, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """The quality figures of :func:`match_files`'s result (keys in the module docstring, plus counts)."""
    n_ref = sum(c["reference"] for c in m.counts.values())
    n_cand = sum(c["candidate"] for c in m.counts.values())
    out = _figures(m.iou, m.ref_labels, m.cand_labels, n_ref, n_cand, thresholds)
    f, p = anova({s: m.iou[m.scenes == s] for s in m.counts})
    out.update({"anova_p": p, "anova_f": f, "classes": m.classes,
                "images": sum(c["images"] for c in m.counts.values()), "images_only_in_reference": m.only_reference,
                "images_only_in_candidate": m.only_candidate, "thresholds": list(thresholds)})
    out["per_scene"] = {}
    for scene, c in m.counts.items():
        sel = m.scenes == scene
        fig = _figures(m.iou[sel], m.ref_labels[sel], m.cand_labels[sel], c["reference"], c["candidate"], thresholds)
        out["per_scene"][scene] = {"images": c["images"], **fig}
    return out


def compare_coco(reference: str | Path | dict, candidate: str | Path | dict,
                 thresholds: tuple[float, ...] = THRESHOLDS, annotation_source: str | None = None) -> dict[str, Any]:
    """Quality of ``candidate`` against ``reference``: ``kappa, mean_iou, precision, recall, anova_p, per_scene``.

    Examples:
        >>> r = compare_coco("expert.json", "auto.json")  # doctest: +SKIP
        >>> r["kappa"], r["precision"]["0.95"]  # doctest: +SKIP
    """
    return summarize(match_files(reference, candidate, annotation_source), thresholds)


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, value, note)`` rows of the Table II-like summary (quality figures and noise levels present)."""
    rows = []
    if "kappa" in result:
        rows += [(f"Cohen's κ ({result['classes']} classes)", _fmt(result["kappa"]),
                  f"class labels of {result['matched']} matched box pairs"),
                 ("IoU", _fmt(result["mean_iou"]), "mean IoU of matched candidate/reference boxes")]
        for name, what in (("Precision", "candidate boxes"), ("Recall", "reference boxes")):
            rows += [(f"{name} (IoU ≥ {t})", _fmt(v), f"share of {what} in a pair with IoU ≥ {t}")
                     for t, v in result[name.lower()].items()]
        p = result["anova_p"]
        verdict = "" if p is None else ("; no systematic difference between scenes" if p >= 0.05 else
                                        "; quality differs between scenes")
        rows.append((f"ANOVA p (IoU across {len(result['per_scene'])} scenes)", _fmt(p),
                     f"F = {_fmt(result['anova_f'], 2)}{verdict}"))
    for row in (result.get("noise") or {}).get("levels", []):
        if row["percent"] > 0:
            rows.append((f"{row['percent']:g}% label noise ΔAP50", _fmt(row["delta_AP50"]),
                         f"AP50 {_fmt(row['AP50'])} vs clean {_fmt(result['noise']['clean_AP50'])}"))
    return rows


def scene_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` of the per-scene table."""
    ts = list(result["precision"])
    headers = ["scene", "images", "ref", "cand", "pairs", "IoU", "κ"] + [f"{k}@{t}" for t in ts for k in "PR"]
    rows = [[scene, str(s["images"]), str(s["reference"]), str(s["candidate"]), str(s["matched"]),
             _fmt(s["mean_iou"]), _fmt(s["kappa"])] + [_fmt(s[k][t]) for t in ts for k in ("precision", "recall")]
            for scene, s in result["per_scene"].items()]
    return headers, rows


def format_report(result: dict[str, Any], title: str = "Annotation quality") -> str:
    """Markdown report: a Table II-like summary, the per-scene table and, when present, the noise experiment."""
    lines = [f"# {title}", "", "| Metrics | Value | Notes |", "|---|---|---|"]
    lines += [f"| {m} | {v} | {n} |" for m, v, n in summary_rows(result)]
    if "kappa" in result:
        lines += ["", f"{result['images']} images compared ({result['images_only_in_reference']} only in the "
                  f"reference, {result['images_only_in_candidate']} only in the candidate); {result['reference']} "
                  f"reference and {result['candidate']} candidate boxes.", "", "## Per scene", ""]
        headers, rows = scene_rows(result)
        lines += ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_iou_by_scene(m: Matches, path: Path) -> Path:
    """Box plot of the matched IoUs per scene (what the ANOVA compares)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = [s for s in m.counts if (m.scenes == s).any()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(scenes) + 2), 3.5))
    ax.boxplot([m.iou[m.scenes == s] for s in scenes], showfliers=False)
    ax.set_xticks(range(1, len(scenes) + 1), scenes, rotation=30, ha="right")
    ax.set_ylabel("IoU of matched pairs")
    ax.set_ylim(0, 1.02)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(result: dict[str, Any], out_dir: str | Path, matches: Matches | None = None) -> list[Path]:
    """Write ``report.md`` and ``report.json`` (atomically) and, given the matches, ``iou_by_scene.png``."""
    out_dir = Path(out_dir)
    md, js = out_dir / "report.md", out_dir / "report.json"
    atomic_write_text(js, json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(md, format_report(result))
    written = [md, js]
    if matches is not None and len(matches.iou):
        written.append(plot_iou_by_scene(matches, out_dir / "iou_by_scene.png"))
    return written

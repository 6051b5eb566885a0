"""Run a :class:`~rtvp.predict.predictor.Predictor` over sources and write what ``rtvp predict`` promises.

``<out>/predictions.json`` (COCO results with ``file_name``, ``category_name``; image ids 1..N in input order over the
readable images), ``<out>/labels/<stem>.txt`` (YOLO ``cls cx cy w h conf``, normalised), ``<out>/images/<name>``
(boxes and labels drawn), with ``save_maps`` ``<out>/maps/<stem>_{uncertainty,selection}.png`` overlays, and
``<out>/skipped.txt`` listing unreadable inputs. Every file is written atomically.

For models with masks (``Detections.mask``), each ``predictions.json`` entry also carries ``segmentation`` (COCO RLE
in original pixels) and ``area_px``, ``length_px``, ``width_px`` (``rtvp.masks.measure_mask``), plus ``area_mm``
(mm²), ``length_mm``, ``width_mm`` when a pixel size is given; the drawn images show the masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtvp.errors import ConfigError, DataError
from rtvp.fileio import atomic_write_bytes, atomic_write_text
from rtvp.masks import check_px_size, mask_records
from rtvp.predict.draw import draw_detections, encode_image, overlay_heatmap
from rtvp.predict.exemplars import Exemplar
from rtvp.predict.inputs import coco_results, unique_stems, write_json, write_yolo
from rtvp.predict.predictor import Predictor
from rtvp.vocabulary import Resolved

DRAW_MIN_SIDE = 480  # drawn images smaller than this are upscaled so labels stay legible


@dataclass
class PredictSummary:
    """What a run produced.

    Attributes:
        resolved: how each prompt was resolved.
        counts: ``(source name, detections per prompt)`` per written image, input order.
        skipped: ``(source, reason)`` of unreadable inputs.
        results: the COCO results written to ``predictions.json``.
        maps_missing: True when maps were asked for but the model has no RVP maps.
        masks: True when the model returned instance masks (entries carry ``segmentation`` and measurements).
    """

    resolved: list[Resolved]
    counts: list[tuple[str, list[int]]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    maps_missing: bool = False
    masks: bool = False


def display_names(resolved: Sequence[Resolved]) -> list[str]:
    """ASCII names to draw: the prompt, else its canonical term (e.g. 划痕 -> scratch), else ``class <k>``."""
    out = []
    for k, r in enumerate(resolved):
        options = [r.prompt, r.canonical or "", r.text]
        out.append(next((o for o in options if o and o.isascii()), f"class {k}"))
    return out


OUTPUT_DIRS = ("labels", "images", "maps")


def check_output_dir(out: Path) -> None:
    """Refuse an output folder that cannot hold the results, before any inference runs.

    Raises:
        ConfigError: ``out`` (or one of its ``labels/``, ``images/``, ``maps/`` folders, or a parent) is a file,
            or the folder cannot be written.
    """
    out = Path(out)
    for p in (out, *(out / d for d in OUTPUT_DIRS)):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--out {out}: {p} is a file, not a folder; pass another --out (a new or an earlier "
                              f"prediction folder)")
    parent = next((q for q in (out, *out.parents) if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is a file, so the folder cannot be created; pass another --out")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {parent} is not writable; pass a folder you can write to")


def save_predictions(predictor: Predictor, sources: Sequence[Path], out: Path, prompts: Sequence[str] | None = None,
                     save_maps: bool = False, save_images: bool = True,
                     exemplars: Sequence[Exemplar] | None = None, px_size: float | None = None) -> PredictSummary:
    """Predict every source and write the results under ``out``.

    Args:
        predictor: a loaded predictor (thresholds, size and batch already set).
        sources: image files.
        out: output folder (created).
        prompts: prompts as typed; ``None`` uses the checkpoint vocabulary.
        save_maps: also write uncertainty/selection overlays (models with RVP).
        save_images: write the drawn images.
        exemplars: example boxes to prompt with (:meth:`Predictor.set_exemplars`), after ``prompts``.
        px_size: millimetres per pixel; entries with masks then also get ``area_mm`` (mm²), ``length_mm``,
            ``width_mm``.

    Returns:
        A :class:`PredictSummary`.

    Raises:
        ConfigError: ``out`` cannot hold the results, or ``px_size`` is not > 0 (checked before any inference).
        DataError: no source could be read.
    """
    out = Path(out)
    check_output_dir(out)
    px_size = check_px_size(px_size, "px_size (--px-size)")
    if exemplars:
        predictor.set_exemplars(exemplars, prompts)
        resolved, prompts = list(predictor.resolved), None  # None: stream keeps the exemplar prompts active
    else:
        resolved = predictor.set_prompts(prompts)
    summary = PredictSummary(resolved)
    names = display_names(resolved)
    stems = dict(zip(map(str, sources), unique_stems([str(s) for s in sources]), strict=True))
    skipped_before = len(predictor.skipped)
    for image_id, pred in enumerate(predictor.stream(list(sources), prompts, save_maps), start=1):
        stem, src = stems[pred.name], Path(pred.name)
        h, w = pred.image.shape[:2]
        dets = pred.detections
        results = coco_results(dets, image_id, file_name=str(src))
        if dets.mask is not None:
            summary.masks = True
            for entry, extra in zip(results, mask_records(dets.mask, px_size), strict=True):
                entry.update(extra)
        summary.results += results
        write_yolo(out / "labels" / f"{stem}.txt", dets, w, h)
        if save_images:
            drawn = draw_detections(pred.image, dets, names=names, min_side=DRAW_MIN_SIDE)
            data, suffix = encode_image(drawn, src.suffix)
            atomic_write_bytes(out / "images" / f"{stem}{suffix}", data)
        if save_maps:
            summary.maps_missing |= not pred.maps
            for kind, heat in pred.maps.items():
                data, _ = encode_image(overlay_heatmap(pred.image, heat, title=kind), ".png")
                atomic_write_bytes(out / "maps" / f"{stem}_{kind}.png", data)
        summary.counts.append((pred.name, [int((dets.class_id == k).sum()) for k in range(len(resolved))]))
    summary.skipped = predictor.skipped[skipped_before:]
    if summary.skipped:
        atomic_write_text(out / "skipped.txt", "".join(f"{s}\t{why}\n" for s, why in summary.skipped))
    if not summary.counts:
        raise DataError(f"none of the {len(sources)} source image(s) could be read; see the messages above")
    write_json(out / "predictions.json", summary.results)
    return summary

"""Detections -> structured, JSON-serialisable facts about one image: the only thing answerers see.

Per box (id = the detection's index, so ``dets[id]`` is the box, as ``rtvp.predict.draw`` labels it ``#id``;
answers cite ``[#id]``):

* ``defect``: canonical vocabulary term when known (the prompt's resolution, else a term found inside the class text:
  "crack on magnetic tile" -> "crack"), otherwise the class text itself; ``label`` keeps the class text.
* ``location``: 3x3 grid word of the box centre (``rtvp.bench.attributes.location_word``, the benchmark's rule:
  cells are half-open, a centre on a grid line goes to the lower-right cell); ``edges``: image edges within
  ``EDGE_BAND`` (10 %) of the image side from the box ("near the left edge").
* ``size``: COCO class of the box area (small < 32^2 <= medium < 96^2 <= large) and ``area_pct`` of the image.
* ``morphology``: from the box aspect ratio only (``rtvp.tasks.query.ROUND_MAX_ASPECT``): elongated >= 3, round
  (compact) < 1.5, irregular in between.
* ``severity``: the knowledge base's level for the defect at that size class.
* ``mask`` (only for detections with masks): ``rtvp.masks.measure_mask`` of the mask: ``area_px``, ``length_px``
  (along the skeleton), ``width_px`` (maximum width), and with ``px_size`` ``area_mm`` (mm²), ``length_mm``,
  ``width_mm``. A mask counts as elongated when its length is at least ``MASK_ELONGATED`` (3) times its width;
  :meth:`BoxFact.extent` then phrases its length ("14 mm long"), otherwise its width ("3.5 mm wide").

Per defect type: count, box ids, highest confidence, worst severity, likely root causes with their sources.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rtvp.bench.attributes import location_word, size_class
from rtvp.errors import ConfigError
from rtvp.masks import check_px_size, measure_masks
from rtvp.structures import Detections
from rtvp.tasks.knowledge import Cause, KnowledgeBase, severity_rank
from rtvp.tasks.query import EDGE_BAND, box_morphology, canonical_term
from rtvp.vocabulary import Resolved, Vocabulary

MASK_ELONGATED = 3.0  # length / width of a mask from which its length, not its width, describes it


def mm_text(value: float) -> str:
    """A millimetre value for sentences: whole mm from 10, one decimal from 1, else two significant digits."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def mask_value(mask: dict[str, float], key: str) -> str:
    """``"14 mm"`` (in mm when ``mask`` has ``<key>_mm``) or ``"140 px"``; ``"3.2 mm²"`` / ``"140 px²"`` for area."""
    unit = "mm" if f"{key}_mm" in mask else "px"
    value = mask[f"{key}_{unit}"]
    text = mm_text(value) if unit == "mm" else f"{value:.0f}"
    return f"{text} {unit}²" if key == "area" else f"{text} {unit}"


@dataclass
class BoxFact:
    """Facts about one detected box (see the module docstring for the rules)."""

    id: int
    label: str
    defect: str
    confidence: float
    box: list[float]
    width_px: float
    height_px: float
    location: str
    edges: list[str]
    size: str
    area_px: float
    area_pct: float
    aspect: float
    morphology: str
    severity: str
    mask: dict[str, float] | None = None

    def extent(self) -> str:
        """How big the mask is in one phrase, ``""`` without a mask.

        ``"14 mm long"`` for an elongated mask (length >= ``MASK_ELONGATED`` x width), else ``"3.5 mm wide"``; in px
        without a pixel size.
        """
        if self.mask is None:
            return ""
        long = self.mask["length_px"] >= MASK_ELONGATED * self.mask["width_px"] > 0
        return f"{mask_value(self.mask, 'length')} long" if long else f"{mask_value(self.mask, 'width')} wide"

    def mask_sizes(self) -> str:
        """``"14 mm long, 0.5 mm wide, 3.2 mm²"`` (px without a pixel size); ``""`` without a mask."""
        if self.mask is None:
            return ""
        m = self.mask
        return f"{mask_value(m, 'length')} long, {mask_value(m, 'width')} wide, {mask_value(m, 'area')}"

    def where(self) -> str:
        """Location phrase, e.g. ``"top-left, near the left and top edges"``."""
        if not self.edges:
            return self.location
        if len(self.edges) == 4:
            return f"{self.location}, near all four edges"
        edges = " and ".join([", ".join(self.edges[:-1]), self.edges[-1]] if len(self.edges) > 1 else self.edges)
        return f"{self.location}, near the {edges} edge{'s' if len(self.edges) > 1 else ''}"


@dataclass
class TypeFact:
    """Facts about one defect type in the image.

    Attributes:
        defect: canonical term (or free text when unknown to the vocabulary).
        count: number of boxes.
        box_ids: ids of those boxes.
        max_confidence: highest confidence among them.
        severity: worst severity among them.
        causes: likely root causes from the knowledge base, each with its source.
        in_knowledge_base: False when the causes are the generic fallback entry.
        labels: the class texts that were grouped into this type.
    """

    defect: str
    count: int
    box_ids: list[int]
    max_confidence: float
    severity: str
    causes: list[Cause]
    in_knowledge_base: bool
    labels: list[str]


@dataclass
class PromptFact:
    """One entry of the vocabulary the detector searched for (to tell "absent" from "not searched")."""

    prompt: str
    defect: str


@dataclass
class ImageFacts:
    """Everything known about one image; ``to_dict``/``to_json`` give the exact payload an LLM receives."""

    width: int
    height: int
    boxes: list[BoxFact] = field(default_factory=list)
    types: list[TypeFact] = field(default_factory=list)
    vocabulary: list[PromptFact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (a box's ``mask`` entry only when it has one)."""
        out = asdict(self)
        for box in out["boxes"]:
            if box["mask"] is None:
                del box["mask"]
        return out

    def to_json(self, indent: int | None = None) -> str:
        """JSON text (non-ASCII kept)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    @property
    def ids(self) -> list[int]:
        """All box ids."""
        return [b.id for b in self.boxes]

    def box(self, box_id: int) -> BoxFact:
        """The box with this id."""
        for b in self.boxes:
            if b.id == box_id:
                return b
        raise KeyError(f"no box #{box_id}; ids are {self.ids}")

    def type_of(self, defect: str) -> TypeFact | None:
        """The type entry for a defect term, or None when it was not detected."""
        return next((t for t in self.types if t.defect == defect), None)

    def searched(self, defect: str) -> bool:
        """Whether the detector's vocabulary covered this defect term."""
        return any(p.defect == defect for p in self.vocabulary)


def edge_words(xyxy: np.ndarray, width: int, height: int) -> list[list[str]]:
    """Edges each box is near (gap to the edge <= ``EDGE_BAND`` of the image side): ``(N, 4)`` -> N lists."""
    gaps = np.stack([xyxy[:, 0] / width, (width - xyxy[:, 2]) / width,
                     xyxy[:, 1] / height, (height - xyxy[:, 3]) / height], 1) <= EDGE_BAND
    names = ("left", "right", "top", "bottom")
    return [[n for n, g in zip(names, row, strict=True) if g] for row in gaps.tolist()]


def _defect_terms(class_names: Sequence[str], resolved: Sequence[Resolved] | None, vocab: Vocabulary) -> list[str]:
    if resolved is not None and len(resolved) != len(class_names):
        raise ConfigError(f"prompts_resolved has {len(resolved)} entries but the detections have "
                          f"{len(class_names)} class names; pass the list returned by Predictor.set_prompts")
    out = []
    for i, name in enumerate(class_names):
        canonical = resolved[i].canonical if resolved is not None else None
        out.append(canonical or canonical_term(name, vocab) or name.strip())
    return out


def _mask_facts(dets: Detections, px_size: float | None,
                measures: list[dict[str, float]] | None = None) -> list[dict[str, float] | None]:
    if dets.mask is None:
        return [None] * len(dets)
    measures = measure_masks(dets.mask, px_size) if measures is None else measures
    return [{k: round(v, 1 if k.endswith("_px") else 4) for k, v in m.items()} for m in measures]


def _box_facts(dets: Detections, terms: list[str], width: int, height: int, kb: KnowledgeBase,
               px_size: float | None = None, measures: list[dict[str, float]] | None = None) -> list[BoxFact]:
    xyxy = dets.xyxy.astype(np.float64)
    wh = np.clip(xyxy[:, 2:] - xyxy[:, :2], 0.0, None)
    area = wh[:, 0] * wh[:, 1]
    aspect = wh.max(1) / np.clip(wh.min(1), 1e-6, None) if len(wh) else np.zeros(0)
    morph, edges = box_morphology(xyxy), edge_words(xyxy, width, height)
    masks = _mask_facts(dets, px_size, measures)
    boxes = []
    for i in range(len(dets)):
        term = terms[int(dets.class_id[i])]
        size = size_class(float(area[i]))
        boxes.append(BoxFact(
            id=i, label=dets.class_names[int(dets.class_id[i])], defect=term,
            confidence=round(float(dets.confidence[i]), 3), box=[round(float(v), 1) for v in xyxy[i]],
            width_px=round(float(wh[i, 0]), 1), height_px=round(float(wh[i, 1]), 1),
            location=location_word([xyxy[i, 0], xyxy[i, 1], wh[i, 0], wh[i, 1]], width, height), edges=edges[i],
            size=size, area_px=round(float(area[i]), 1), area_pct=round(100.0 * float(area[i]) / (width * height), 2),
            aspect=round(float(min(aspect[i], 1e6)), 2), morphology=str(morph[i]),
            severity=kb.severity(term, size), mask=masks[i]))
    return boxes


def facts_from_detections(
    dets: Detections,
    width: int,
    height: int,
    prompts_resolved: Sequence[Resolved] | None = None,
    kb: KnowledgeBase | None = None,
    vocab: Vocabulary | None = None,
    px_size: float | None = None,
    measures: list[dict[str, float]] | None = None,
) -> ImageFacts:
    """Turn one image's detections into facts.

    Args:
        dets: detections in original pixels (``xyxy`` ``(N, 4)``, ``confidence`` ``(N,)``, ``class_id`` ``(N,)``).
        width: image width in pixels.
        height: image height in pixels.
        prompts_resolved: ``Predictor.set_prompts`` result, one per ``dets.class_names`` entry; None resolves the
            class names through the vocabulary here.
        kb: knowledge base (default: the shipped one).
        vocab: controlled vocabulary (default: the shipped one).
        px_size: pixel size in millimetres per pixel: mask measurements then also come in mm (``dets.mask`` set).
        measures: ``rtvp.masks.measure_masks(dets.mask, px_size)`` when the caller already has them (the service
            reports the same measurements next to the facts): not measured again.

    Returns:
        The facts; box ids are detection indices.

    Examples:
        >>> d = Detections([[10, 10, 200, 20]], [0.9], [0], ["crack on magnetic tile"])
        >>> f = facts_from_detections(d, 300, 300)
        >>> f.boxes[0].defect, f.boxes[0].location, f.boxes[0].morphology, f.types[0].severity
        ('crack', 'top', 'elongated', 'critical')
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    px_size = check_px_size(px_size)
    kb, vocab = kb or KnowledgeBase.default(), vocab or Vocabulary.default()
    terms = _defect_terms(dets.class_names, prompts_resolved, vocab)
    boxes = _box_facts(dets, terms, width, height, kb, px_size, measures)
    types: list[TypeFact] = []
    for term in dict.fromkeys(b.defect for b in boxes):
        group = [b for b in boxes if b.defect == term]
        entry = kb.lookup(term)
        types.append(TypeFact(
            defect=term, count=len(group), box_ids=[b.id for b in group],
            max_confidence=max(b.confidence for b in group),
            severity=max((b.severity for b in group), key=severity_rank), causes=list(entry.causes),
            in_knowledge_base=entry.known, labels=list(dict.fromkeys(b.label for b in group))))
    notes = ["severity and causes come from rtvp's shipped knowledge base; 'engineering judgement' sources are "
             "hypotheses to check, not a diagnosis", "box-based shape: 'round' means compact (aspect < 1.5)"]
    if dets.mask is not None:
        unit = f"mm (pixel size {px_size:g} mm; area in mm²)" if px_size is not None else "pixels"
        notes.append(f"'mask' sizes are measured on the instance mask, in {unit}: length along its skeleton, "
                     "maximum width, area")
    vocabulary = [PromptFact(n, t) for n, t in zip(dets.class_names, terms, strict=True)]
    return ImageFacts(int(width), int(height), boxes, types, vocabulary, notes)

"""Pydantic request and response models of the inspection service (they generate the OpenAPI schema).

Boxes are ``[x1, y1, x2, y2]`` in original image pixels (top-left origin); a detection's ``id`` is its row index
(0-based), the id ``rtvp predict`` images label as ``#id`` and VQA answers cite as ``[#id]`` (``ImageFacts``).
Models with masks add per detection its ``segmentation`` (COCO compressed RLE) and the measurements of
``rtvp.masks.measure_mask`` (``area_px``, ``length_px``, ``width_px``; ``_mm`` twins when the request gives
``px_size``), the same names as ``rtvp predict``'s ``predictions.json``; they are null for models without masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from rtvp.masks import MAX_PX_SIZE, mask_records

if TYPE_CHECKING:  # pragma: no cover
    from rtvp.structures import Detections
    from rtvp.tasks.grounding import GroundingQuery
    from rtvp.vocabulary import Resolved


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="stable machine-readable code, e.g. 'image_too_large'")
    message: str = Field(description="human-readable cause and fix")


class ErrorResponse(BaseModel):
    """Shape of every 4xx/5xx response."""

    error: ErrorDetail


class Health(BaseModel):
    """Liveness (no API key needed; reveals nothing about the model)."""

    status: str = "ok"
    version: str


class Limits(BaseModel):
    """Request limits the service enforces."""

    max_upload_bytes: int
    max_pixels: int
    content_types: list[str]
    max_prompts: int
    max_prompt_chars: int
    body_timeout_s: float = Field(description="longest pause while a request body arrives (then 408)")


class ModelInfo(BaseModel):
    """The served model."""

    name: str
    version: str = Field(description="checkpoint format version, or the rtvp version when unknown")
    rtvp_version: str
    vocabulary: list[str] = Field(description="class texts used when a request gives no prompts")
    input_size: int | None = Field(description="inference image side in pixels (letterboxed)")
    device: str | None = None
    arch: str | None = Field(None, description="'rtvpnet' (open vocabulary) or 'expert' (closed set)")
    text_encoder: str | None = None
    conf: float | None = Field(None, description="default confidence threshold")
    iou: float | None = Field(None, description="default NMS IoU threshold")
    batching: str = Field(description="how concurrent requests are executed")
    limits: Limits


class ImageInfo(BaseModel):
    """Size of the decoded image."""

    width: int
    height: int


class PromptMapping(BaseModel):
    """How one prompt resolved through the controlled vocabulary (e.g. '划痕' -> 'scratch')."""

    prompt: str = Field(description="as typed")
    text: str = Field(description="what was encoded")
    canonical: str | None = Field(description="canonical vocabulary term, null for free text")
    matched: str = Field("", description="the alias that matched")


class RLE(BaseModel):
    """An instance mask as COCO compressed RLE (``pycocotools.mask.decode`` reads it; column-major runs)."""

    size: list[int] = Field(description="[height, width] of the image", min_length=2, max_length=2)
    counts: str = Field(description="COCO compressed run lengths, first run of 0s")


class Detection(BaseModel):
    """One detected box (and its mask and measurements, for models with masks)."""

    id: int = Field(description="row index (0-based); VQA answers cite it as [#id]")
    box: list[float] = Field(description="[x1, y1, x2, y2] in original pixels", min_length=4, max_length=4)
    label: str = Field(description="the prompt (or vocabulary text) this box answers")
    canonical: str | None = Field(None, description="canonical vocabulary term of the label")
    class_id: int = Field(description="index into the request's prompts (or the model vocabulary)")
    confidence: float
    segmentation: RLE | None = Field(None, description="the instance mask in original pixels (models with masks)")
    area_px: float | None = Field(None, description="mask area in pixels")
    length_px: float | None = Field(None, description="length along the mask's skeleton in pixels")
    width_px: float | None = Field(None, description="maximum width of the mask in pixels")
    area_mm: float | None = Field(None, description="mask area in mm² (with px_size)")
    length_mm: float | None = Field(None, description="length along the skeleton in mm (with px_size)")
    width_mm: float | None = Field(None, description="maximum width in mm (with px_size)")


class Timing(BaseModel):
    """Server-side time per stage in milliseconds (queueing excluded)."""

    decode_ms: float
    inference_ms: float


class DetectResponse(BaseModel):
    """``POST /v1/detect`` result."""

    model: str
    image: ImageInfo
    prompts: list[PromptMapping]
    detections: list[Detection]
    timing: Timing


class GroundedBox(BaseModel):
    """A grounded box: ``score = confidence * prior`` (prior: how well it fits the query's location/size words)."""

    rank: int = Field(description="1 = best match")
    index: int = Field(description="row of the box among the detector's candidates for the phrase")
    box: list[float] = Field(min_length=4, max_length=4)
    label: str
    confidence: float
    prior: float
    score: float


class GroundResponse(BaseModel):
    """``POST /v1/ground`` result."""

    model: str
    image: ImageInfo
    query: str
    phrase: str = Field(description="defect phrase sent to the detector ('' = the model vocabulary)")
    defect: str | None = Field(description="canonical term of the phrase")
    constraints: str = Field(description="location / size / shape words understood")
    boxes: list[GroundedBox]
    timing: Timing


class AskResponse(BaseModel):
    """``POST /v1/ask`` result: the answer, the boxes it cites, and the detections it was computed from."""

    model: str
    image: ImageInfo
    question: str
    answer: str
    box_ids: list[int] = Field(description="ids of the detections the answer rests on")
    answerer: str
    intents: list[str] = []
    facts_used: list[str] = []
    prompts: list[PromptMapping]
    detections: list[Detection]
    facts: dict[str, Any] = Field(description="the structured facts the answerer saw")
    timing: Timing


def _no_default(schema: dict[str, Any]) -> None:
    """Drop ``"default": null`` from an optional form field's schema: a multipart field is either sent or not."""
    schema.pop("default", None)


def _in_interval(low_open: bool) -> Any:
    """An after-validator for ``[0, 1]`` (or ``(0, 1]``) that also rejects NaN, naming the interval."""
    interval = "(0, 1]" if low_open else "[0, 1]"

    def check(value: float | None) -> float | None:
        if value is None or (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
            return value
        raise PydanticCustomError("number_interval", "should be a number in {interval}, got {value}",
                                  {"interval": interval, "value": value})

    return AfterValidator(check)


def _check_px_size(value: float | None) -> float | None:
    if value is None or 0.0 < value <= MAX_PX_SIZE:  # NaN fails both comparisons
        return value
    raise PydanticCustomError("px_size", "should be the pixel size in millimetres per pixel, a number in (0, {limit}], "
                              "got {value}", {"limit": f"{MAX_PX_SIZE:g}", "value": value})


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_text", "is blank (only whitespace); send some words")
    return value


UnitFloat = Annotated[float | None, _in_interval(False), WithJsonSchema({"type": "number", "minimum": 0.0,
                                                                           "maximum": 1.0})]
"""Optional number in ``[0, 1]``; documented as a plain number (multipart cannot send JSON ``null``)."""
OpenUnitFloat = Annotated[float | None, _in_interval(True), WithJsonSchema({"type": "number", "exclusiveMinimum": 0.0,
                                                                              "maximum": 1.0})]
"""Optional number in ``(0, 1]``."""
PxSize = Annotated[float | None, AfterValidator(_check_px_size),
                   WithJsonSchema({"type": "number", "exclusiveMinimum": 0.0, "maximum": MAX_PX_SIZE})]
"""Optional pixel size in millimetres per pixel, in ``(0, MAX_PX_SIZE]``."""
PX_SIZE_DOC = ("pixel size in millimetres per pixel; adds area_mm (mm²), length_mm and width_mm to detections with "
               "masks")
Prompts = Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 8000})]
"""Optional comma-separated prompts (a string when sent)."""
Exemplars = Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 20000})]
"""Optional JSON text of exemplar boxes (a string when sent)."""
NOT_BLANK = {"pattern": r"\S"}
"""JSON-schema ``pattern`` of text that must hold a non-space character (the server rejects blank text with 422)."""


class DetectForm(BaseModel):
    """Text fields of ``POST /v1/detect`` (multipart, next to the ``image`` file)."""

    prompts: Prompts = Field(None, max_length=8000, json_schema_extra=_no_default,
                             description="comma-separated prompts (also ， and 、); empty = model vocabulary")
    conf: UnitFloat = Field(None, json_schema_extra=_no_default,
                            description="confidence threshold, a number in [0, 1] (default: the server's)")
    iou: OpenUnitFloat = Field(None, json_schema_extra=_no_default,
                               description="NMS IoU threshold, a number in (0, 1] (default: the server's)")
    exemplars: Exemplars = Field(None, max_length=20000, json_schema_extra=_no_default,
                                 description='"find more like this": a JSON list of boxes on the uploaded image, '
                                             '[{"box": [x1, y1, x2, y2], "name": "spur"}] (pixels, name optional); '
                                             "each becomes a prompt next to the prompts (RTVPNet models)")
    px_size: PxSize = Field(None, json_schema_extra=_no_default, description=PX_SIZE_DOC)


class GroundForm(BaseModel):
    """Text fields of ``POST /v1/ground``."""

    query: Annotated[str, AfterValidator(_not_blank)] = Field(
        min_length=1, max_length=500, json_schema_extra=NOT_BLANK, examples=["crack near the left edge"],
        description="e.g. 'crack near the left edge', '左上角的划痕' (not blank)")
    top_k: int = Field(1, ge=1, le=50, description="number of boxes to return")


class AskForm(BaseModel):
    """Text fields of ``POST /v1/ask``."""

    question: Annotated[str, AfterValidator(_not_blank)] = Field(
        min_length=1, max_length=1000, json_schema_extra=NOT_BLANK, examples=["what defects are there and why?"],
        description="e.g. 'what defects are there and why?' (not blank)")
    prompts: Prompts = Field(None, max_length=8000, json_schema_extra=_no_default,
                             description="comma-separated prompts; empty = vocabulary")
    px_size: PxSize = Field(None, json_schema_extra=_no_default,
                            description=PX_SIZE_DOC + "; the facts then give sizes in mm")


def prompt_mappings(resolved: Sequence[Resolved]) -> list[dict[str, Any]]:
    """``Resolved`` records -> ``PromptMapping`` dicts."""
    return [{"prompt": r.prompt, "text": r.text, "canonical": r.canonical, "matched": r.matched} for r in resolved]


def detections_out(dets: Detections, resolved: Sequence[Resolved], px_size: float | None = None,
                   measures: list[dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """``Detections`` -> ``Detection`` dicts (id = row index; canonical from the aligned prompt resolution).

    With ``dets.mask`` set, each dict also gets ``segmentation`` and the measurements (``rtvp.masks.mask_records``;
    ``_mm`` twins with ``px_size``; ``measures``: ``rtvp.masks.measure_masks`` already computed by the caller).
    """
    aligned = len(resolved) == len(dets.class_names)
    out = [{"id": i, "box": [round(v, 2) for v in box], "label": dets.class_names[c],
            "canonical": resolved[c].canonical if aligned else None, "class_id": c, "confidence": round(s, 4)}
           for i, (box, c, s) in enumerate(zip(dets.xyxy.tolist(), dets.class_id.tolist(),
                                               dets.confidence.tolist(), strict=True))]
    if dets.mask is not None:
        for d, extra in zip(out, mask_records(dets.mask, px_size, measures=measures), strict=True):
            d.update(extra)
    return out


def build_detect(model: str, shape: tuple[int, ...], dets: Detections, resolved: Sequence[Resolved],
                 decode_ms: float, inference_ms: float, px_size: float | None = None,
                 measures: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """The ``DetectResponse`` payload for an image of ``shape`` ``(H, W, C)``.

    ``px_size``: mm per pixel; ``measures``: the masks' measurements when the caller already has them.
    """
    return {"model": model, "image": {"width": int(shape[1]), "height": int(shape[0])},
            "prompts": prompt_mappings(resolved), "detections": detections_out(dets, resolved, px_size, measures),
            "timing": {"decode_ms": round(decode_ms, 2), "inference_ms": round(inference_ms, 2)}}


def build_ground(model: str, shape: tuple[int, ...], parsed: GroundingQuery, boxes: Sequence[Any],
                 decode_ms: float, inference_ms: float) -> dict[str, Any]:
    """The ``GroundResponse`` payload (``boxes``: ``rtvp.tasks.grounding.GroundedBox`` best first)."""
    return {"model": model, "image": {"width": int(shape[1]), "height": int(shape[0])}, "query": parsed.query,
            "phrase": parsed.phrase, "defect": parsed.defect, "constraints": parsed.constraints.describe(),
            "boxes": [{"rank": rank + 1, "index": b.index, "box": b.box, "label": b.label, "confidence": b.confidence,
                       "prior": b.prior, "score": b.score} for rank, b in enumerate(boxes)],
            "timing": {"decode_ms": round(decode_ms, 2), "inference_ms": round(inference_ms, 2)}}

"""``Predictor``: checkpoint + prompts -> ``Detections`` in original pixels. Imports no training, loss or data code.

Pipeline per batch: read (``rtvp.imaging``), convert to the checkpoint's channel count, letterbox to ``imgsz``, run the
prompted model (``rtvp.predict.loading.PromptedModel``), keep (anchor, prompt) pairs above ``conf``, class-aware NMS,
map boxes back through the letterbox. :func:`run_batch` is that model-run + un-letterbox step; the benchmark
inference (``rtvp.evaluation.inference``) calls it too, so ``rtvp predict`` and ``rtvp val`` share one code path.

Examples:
    >>> pred = Predictor("runs/exp/weights/best.pt", conf=0.25)  # doctest: +SKIP
    >>> dets = pred.predict([Path("board.jpg")], prompts=["scratch", "划痕", "hole in wood"])  # doctest: +SKIP
    >>> dets[0].labels, dets[0].xyxy  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtvp.device import resolve_device
from rtvp.errors import ConfigError, DataError
from rtvp.imaging import letterbox, read_image, to_channels, unletterbox_boxes
from rtvp.models.decode import decode_boxes, postprocess
from rtvp.models.outputs import RawOutputs
from rtvp.predict.exemplars import Exemplar, exemplar_vectors
from rtvp.predict.loading import ModelMeta, PromptedModel, bind_prompts, build_encoder, load_model, text_table
from rtvp.predict.maps import maps_to_images
from rtvp.predict.masks import check_mask_thr, detection_masks
from rtvp.structures import Detections
from rtvp.vocabulary import Resolved, Vocabulary

LOGGER = logging.getLogger("rtvp.predict")
Source = Path | str | np.ndarray


@dataclass
class Letterboxed:
    """Letterbox geometry of a batch: ``letterboxed = original * scale + pad``.

    Attributes:
        scales: ``(B,)`` resize ratios.
        pads: ``(B, 2)`` ``(pad_x, pad_y)`` pixels.
        sizes: ``(B, 2)`` original ``(h, w)``.
    """

    scales: np.ndarray
    pads: np.ndarray
    sizes: np.ndarray


@dataclass
class Prediction:
    """One image's result from :meth:`Predictor.stream`.

    Attributes:
        source: the input (path or array) as given.
        name: a display name (the path, or ``"array<i>"``).
        image: the image as read, ``(H, W, C)`` uint8 with the checkpoint's channel count.
        detections: detections in original pixels.
        maps: ``{"uncertainty": (H, W), "selection": (H, W)}`` float32 in [0, 1] when asked and available.
    """

    source: Source
    name: str
    image: np.ndarray
    detections: Detections
    maps: dict[str, np.ndarray] = field(default_factory=dict)

MAX_BOUND_PROMPT_LISTS = 256


def select(outputs: RawOutputs, conf: float, iou: float, max_det: int,
           max_nms: int = 30000) -> list[tuple[torch.Tensor, ...]]:
    """``postprocess`` keeping the anchor index of every detection.

    Returns:
        Per image ``(boxes (N, 4) xyxy letterboxed pixels, scores (N,), labels (N,), anchors (N,))``, scores
        descending.
    """
    return postprocess(outputs, conf=conf, iou=iou, max_det=max_det, max_nms=max_nms, return_anchors=True)


MIN_BOX_PX = 0.01
"""Smallest width/height (original pixels) of a reported box: the precision COCO results are written with; a box
that lies in the letterbox padding is clipped to zero size by the unletterbox step and is not a detection (a results
file with such boxes is refused by ``rtvp val --predictions``)."""


@torch.no_grad()
def run_batch(prompted: PromptedModel, images: torch.Tensor, geo: Letterboxed, class_names: list[str],
              conf: float, iou: float, max_det: int, with_maps: bool = False, amp: bool = False,
              mask_thr: float = 0.5) -> tuple[list[Detections], list[dict[str, np.ndarray]]]:
    """Run the prompted model on a letterboxed batch and map the detections back to original pixels.

    Args:
        prompted: model with its vocabulary bound (eval mode).
        images: ``(B, C, S, S)`` float in [0, 1] on the model's device.
        geo: letterbox geometry of each image.
        class_names: names of the K prompts (``Detections.class_names``).
        conf: score threshold.
        iou: NMS IoU threshold.
        max_det: detections per image.
        with_maps: also return the RVP uncertainty/selection maps in original pixels.
        amp: the forward under CPU bf16 autocast (decoding, NMS and maps in fp32).
        mask_thr: mask probability a pixel must exceed (models with the mask branch).

    Returns:
        ``(detections per image, maps per image)`` (maps are empty dicts unless asked and the model has RVP);
        ``Detections.mask`` is filled when the model has the mask branch.
    """
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        outputs = prompted(images)
    if amp:  # decoding, NMS and maps in fp32
        outputs = outputs.float()
        outputs.maps = {k: [m.float() for m in v] for k, v in outputs.maps.items()}
    dets = []
    for b, (boxes, scores, labels, anchors) in enumerate(select(outputs, conf, iou, max_det)):
        h, w = (int(v) for v in geo.sizes[b])
        xyxy = unletterbox_boxes(boxes.cpu().numpy(), float(geo.scales[b]), tuple(geo.pads[b]), w, h)
        keep = ((xyxy[:, 2:] - xyxy[:, :2]) >= MIN_BOX_PX).all(axis=1)  # boxes left in the padding clip to nothing
        anchors = anchors.cpu().numpy()[keep]
        data = {"anchor": anchors}
        if outputs.embeddings is not None:
            data["embedding"] = outputs.embeddings[b, torch.from_numpy(anchors).to(outputs.embeddings.device)] \
                .float().cpu().numpy()
        masks = None if outputs.mask_coef is None else detection_masks(
            outputs.mask_coef[b, torch.from_numpy(anchors).to(outputs.mask_coef.device)].float().cpu().numpy(),
            outputs.protos[b].float().cpu().numpy(), xyxy[keep], float(geo.scales[b]), tuple(geo.pads[b]), (h, w),
            mask_thr)
        dets.append(Detections(xyxy[keep], scores.cpu().numpy()[keep], labels.cpu().numpy()[keep], list(class_names),
                               data, masks))
    maps = maps_to_images(outputs.maps, geo, images.shape[-1]) if with_maps and outputs.maps else [{} for _ in dets]
    return dets, maps


def load_source(source: Source, channels: int) -> np.ndarray:
    """Read a path or take an array (``(H, W)`` / ``(H, W, C)`` uint8, RGB order) with ``channels`` channels.

    Raises:
        DataError: unreadable file, or an array of the wrong dtype/shape.
    """
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3) or min(source.shape[:2]) < 1:
            raise DataError(f"array input must be (H, W) or (H, W, C) uint8, got {source.dtype} {source.shape}")
        img = source[:, :, None] if source.ndim == 2 else source
    else:
        img = read_image(source, channels=None)
    return to_channels(img, channels)


class Predictor:
    """Open-vocabulary (or closed-set) defect detection from a checkpoint.

    Args:
        weights: checkpoint path or dict (``rtvp.checkpoint``).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        imgsz: letterbox side (multiple of 32); ``None`` takes the checkpoint's training size.
        conf: score threshold.
        iou: class-aware NMS IoU threshold.
        max_det: detections per image.
        batch: images per forward pass.
        amp: run the model under CPU bf16 autocast (decoding and NMS stay fp32): on the AMD EPYC of
            ``benchmarks/results/cost/runtimes-quiet`` expert-n 24.0 vs 34.2 ms at 320 px, rtvpnet-n 75.3 vs
            98.9 ms; off by default, so ``rtvp val`` numbers stay fp32. Needs a CPU with native bf16 to pay off.
        mask_thr: mask probability a pixel must exceed (mask branch; 0.5 by default). Lower keeps more of thin
            defects, whose edges and gaps end below 0.5; on CrackForest, choosing it on the training images
            together with ``conf`` did not measure crack length better than 0.5 over 3 seeds
            (``benchmarks/results/masks_seeds``).

    Attributes:
        vocabulary: the checkpoint's class texts.
        meta: checkpoint metadata (architecture, encoder, channels, ...).
        prompts: the active prompts; ``resolved``: how each was resolved (set by :meth:`set_prompts` or the first
            prediction).
        last_maps: per image of the last :meth:`predict`, the RVP maps (``save_maps=True``).
        skipped: ``(source, reason)`` of every unreadable input seen so far.
    """

    def __init__(self, weights: Path | str | dict, device: str = "cpu", imgsz: int | None = None, conf: float = 0.25,
                 iou: float = 0.7, max_det: int = 300, batch: int = 8, amp: bool = False,
                 mask_thr: float = 0.5) -> None:
        self.device = resolve_device(device)
        self.amp = bool(amp) and self.device.type == "cpu"
        self.model, self.meta = load_model(weights, self.device, fuse=True)
        self.imgsz = int(imgsz or self.meta.imgsz)
        if self.imgsz < 32 or self.imgsz % 32:
            raise ConfigError(f"imgsz={self.imgsz} must be a positive multiple of 32 (the largest stride)")
        if not (0.0 <= conf < 1.0 and 0.0 < iou <= 1.0 and max_det >= 1 and batch >= 1):
            raise ConfigError(f"need 0 <= conf < 1, 0 < iou <= 1, max_det >= 1, batch >= 1; got conf={conf}, "
                              f"iou={iou}, max_det={max_det}, batch={batch}")
        self.conf, self.iou, self.max_det, self.batch = conf, iou, max_det, batch
        self.mask_thr = check_mask_thr(mask_thr)
        self._encoder: Any = None
        # LRU of bound prompt lists: a long-running service sees many free-text prompt lists
        self._bound: OrderedDict[tuple[str, ...] | None, tuple[PromptedModel, list[Resolved]]] = OrderedDict()
        self.prompts: list[str] = []
        self.resolved: list[Resolved] = []
        self.last_maps: list[dict[str, np.ndarray]] = []
        self.last_names: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self._active: PromptedModel | None = None  # bound lazily: the checkpoint vocabulary may need the encoder
        self.exemplar_iou = True  # pool exemplar regions over the anchors whose predicted boxes match (else centres)

    @property
    def vocabulary(self) -> list[str]:
        """The checkpoint's class texts (category order)."""
        return list(self.meta.vocabulary)

    @property
    def channels(self) -> int:
        """Image channels the model takes."""
        return self.meta.in_channels

    def encoder(self) -> Any:
        """The checkpoint's text encoder, built on first use."""
        if self._encoder is None:
            self._encoder = build_encoder(self.meta, device=str(self.device))
        return self._encoder

    def set_prompts(self, prompts: Sequence[str] | None) -> list[Resolved]:
        """Activate a vocabulary; embeddings are cached per prompt list.

        Args:
            prompts: prompts as the user typed them (synonyms, Chinese/Japanese terms resolve through
                ``rtvp.vocabulary``); ``None`` uses the checkpoint's vocabulary.

        Returns:
            The resolution of each prompt (which canonical term it mapped to).

        Raises:
            ConfigError: empty list, blank or over-long prompt, or (closed-set expert) a prompt outside its classes.
        """
        key = None if prompts is None else tuple(prompts)
        if key not in self._bound:
            self._bound[key] = bind_prompts(self.model, self.meta, None if key is None else list(key), self.encoder)
            while len(self._bound) > MAX_BOUND_PROMPT_LISTS:
                self._bound.popitem(last=False)
        self._bound.move_to_end(key)
        self.resolved = list(self._bound[key][1])
        self.prompts = [r.prompt for r in self.resolved]
        self._active = self._bound[key][0]
        return self.resolved

    def set_exemplars(self, exemplars: Sequence[Exemplar], prompts: Sequence[str] | None = None,
                      text_weight: float = 0.5) -> list[str]:
        """Activate exemplar prompts ("find more like this box"), optionally next to text prompts.

        Each exemplar image is run once with the checkpoint vocabulary; the region embedding of its box becomes a
        prompt (:mod:`rtvp.predict.exemplars`). Prompt order: the text ``prompts`` first, then one prompt per
        exemplar name in order of first appearance.

        Args:
            exemplars: example boxes (image path or array, xyxy pixels, optional name).
            prompts: text prompts as typed, detected alongside (None: exemplars only).
            text_weight: weight of a named exemplar's text vector in its prompt (0 = the boxes alone).

        Returns:
            The active prompt names.

        Raises:
            ConfigError: an expert checkpoint (no region embeddings), no exemplars, or bad prompts.
            DataError: an unreadable exemplar image or a box outside it.
        """
        if self.meta.arch == "expert":
            raise ConfigError("exemplar prompts need an RTVPNet checkpoint: a closed-set expert has no region "
                              "embeddings (train stage 2, or prompt it with --prompts)")
        if not exemplars:
            raise ConfigError("no exemplars given: pass at least one {image, box}")
        base, _ = bind_prompts(self.model, self.meta, None, self.encoder)

        @torch.no_grad()
        def embed(boxed: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            image = torch.from_numpy(boxed.transpose(2, 0, 1).copy())[None].to(self.device).float().div_(255.0)
            out = base(image)
            pred = decode_boxes(out.box_dist[0].float(), out.anchors, out.strides) if self.exemplar_iou else None
            return out.embeddings[0], out.anchors, pred

        resolved = Vocabulary.default().resolve_all(list(prompts)) if prompts else []
        names, vectors = exemplar_vectors(exemplars, embed, lambda src: load_source(src, self.channels), self.imgsz,
                                          self._project, text_weight)
        if resolved:
            vectors = torch.cat([self._project([r.text for r in resolved]).to(vectors), vectors])
        self._active = PromptedModel(self.model, text=vectors, projected=True).to(self.device).eval()
        self.resolved = resolved + [Resolved(n, n, None, "exemplar") for n in names]
        self.prompts = [r.prompt for r in self.resolved]
        return list(self.prompts)

    @torch.no_grad()
    def _project(self, texts: list[str]) -> torch.Tensor:
        """``(N, D)`` projected text prompts (region-embedding space) of canonical texts."""
        table = text_table(self.meta, texts, self.encoder).to(self.device)
        return self.model.project_text(table)

    def _read(self, items: list[tuple[int, Source]]) -> list[tuple[int, Source, np.ndarray | None, str]]:
        def one(item: tuple[int, Source]) -> tuple[int, Source, np.ndarray | None, str]:
            i, src = item
            try:
                return i, src, load_source(src, self.channels), ""
            except DataError as e:
                return i, src, None, str(e)

        if len(items) == 1:
            return [one(items[0])]
        with ThreadPoolExecutor(max_workers=min(4, len(items))) as pool:
            return list(pool.map(one, items))

    def stream(self, sources: Sequence[Source], prompts: Sequence[str] | None = None,
               save_maps: bool = False, exemplars: Sequence[Exemplar] | None = None) -> Iterator[Prediction]:
        """Yield one :class:`Prediction` per readable source, in input order.

        Unreadable sources are logged, recorded in :attr:`skipped` and skipped; nothing else is lost.

        Args:
            sources: image paths or ``(H, W[, C])`` uint8 RGB arrays.
            prompts: vocabulary for this call (``None``: keep the active one).
            save_maps: attach the RVP uncertainty/selection maps (models with ``rvp``).
            exemplars: example boxes to prompt with (:meth:`set_exemplars`), next to ``prompts`` when given.
        """
        if exemplars is not None:
            self.set_exemplars(exemplars, prompts)
        elif prompts is not None or self._active is None:
            self.set_prompts(prompts)
        prompted, names = self._active, list(self.prompts)
        items = list(enumerate(sources))
        for start in range(0, len(items), self.batch):
            read = []
            for i, src, img, err in self._read(items[start : start + self.batch]):
                if img is None:
                    shown = str(src) if not isinstance(src, np.ndarray) else f"array<{i}>"
                    LOGGER.warning("skipped unreadable image %s", err or shown)
                    self.skipped.append((shown, err))
                else:
                    read.append((i, src, img))
            if not read:
                continue
            boxed = [letterbox(img, self.imgsz) for _, _, img in read]
            geo = Letterboxed(np.array([s for _, s, _ in boxed], np.float64), np.array([p for _, _, p in boxed]),
                              np.array([img.shape[:2] for _, _, img in read]))
            batch = torch.from_numpy(np.stack([b for b, _, _ in boxed]).transpose(0, 3, 1, 2).copy())
            batch = batch.to(self.device).float().div_(255.0)
            dets, maps = run_batch(prompted, batch, geo, names, self.conf, self.iou, self.max_det, save_maps,
                                   amp=self.amp, mask_thr=self.mask_thr)
            for (i, src, img), d, m in zip(read, dets, maps, strict=True):
                name = f"array<{i}>" if isinstance(src, np.ndarray) else str(src)
                yield Prediction(src, name, img, d, m)

    def predict(self, sources: Sequence[Source], prompts: Sequence[str] | None = None,
                save_maps: bool = False, exemplars: Sequence[Exemplar] | None = None) -> list[Detections]:
        """Detect the prompted defects.

        Args:
            sources: image paths or ``(H, W[, C])`` uint8 RGB arrays.
            prompts: prompts as typed (``None``: the active vocabulary, initially the checkpoint's).
            save_maps: keep the RVP maps of each image in :attr:`last_maps`.
            exemplars: example boxes of defects to find more of (RTVPNet checkpoints; see
                :mod:`rtvp.predict.exemplars`); their names follow ``prompts`` in ``class_names``.

        Returns:
            One ``Detections`` per readable source, in input order (boxes in original pixels, ``class_names`` = the
            prompts as typed, ``data["anchor"]`` and, for RTVPNet, ``data["embedding"]`` (N, D)). Unreadable
            sources are skipped; :attr:`last_names` lists the sources the results belong to.
        """
        t0 = time.perf_counter()
        results = list(self.stream(sources, prompts, save_maps, exemplars))
        self.last_maps = [r.maps for r in results]
        self.last_names = [r.name for r in results]
        LOGGER.debug("%d images in %.1f ms", len(results), 1000 * (time.perf_counter() - t0))
        return [r.detections for r in results]


__all__ = ["Letterboxed", "ModelMeta", "Prediction", "Predictor", "load_source", "maps_to_images",
           "run_batch", "select"]

"""Benchmark inference: a checkpoint (``rtvp val --weights``) or a live model (the trainer's eval hook) on a split.

Images come from ``rtvp.data.DetectionDataset`` (``augment=False``: plain letterbox); the model run, NMS and
un-letterboxing are the predictor's (:func:`rtvp.predict.predictor.run_batch`), so ``rtvp predict`` and
``rtvp val`` produce the same boxes. Vocabulary: every category for the closed and generalized protocols, the
unseen ones for the open protocol (the evaluator then restricts the ground truth the same way).

Examples:
    >>> results = predict_split("runs/exp/weights/best.pt", Path("bench"), "closed_val", "closed")  # doctest: +SKIP
    >>> eval_fn = make_eval_fn(Path("bench"), "open", imgsz=320)  # doctest: +SKIP
    >>> metrics = eval_fn(trainer.eval_model, vocabulary)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from rtvp.data import DetectionDataset
from rtvp.device import resolve_device
from rtvp.errors import ConfigError, DataError
from rtvp.models.config import TextEncoderSpec
from rtvp.models.expert import ExpertDetector
from rtvp.models.text.base import encode_class_ensembles
from rtvp.predict.inputs import coco_results
from rtvp.predict.loading import ModelMeta, PromptedModel, bind_prompts, build_encoder, load_model
from rtvp.predict.predictor import Letterboxed, run_batch
from rtvp.structures import Detections

PROTOCOLS = ("closed", "open", "generalized")
EVAL_CONF, EVAL_IOU, EVAL_MAX_DET = 0.001, 0.7, 300  # COCO-style evaluation thresholds


def split_vocabulary(categories: Sequence[dict[str, Any]], protocol: str) -> list[int]:
    """Indices (into ``categories``) of the classes prompted under ``protocol``: all, or the unseen ones (open)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{protocol}'; choose one of {list(PROTOCOLS)}")
    if protocol != "open":
        return list(range(len(categories)))
    unseen = [i for i, c in enumerate(categories) if c.get("split", "seen") == "unseen"]
    if not unseen:
        raise DataError("open protocol: the benchmark has no category with split 'unseen'")
    return unseen


def split_dataset(bench: Path, split: str, protocol: str, imgsz: int, channels: int) -> DetectionDataset:
    """The un-augmented dataset of ``bench/annotations/<split>.json`` (every category allowed on val splits)."""
    if imgsz < 32 or imgsz % 32:
        raise ConfigError(f"imgsz={imgsz} must be a positive multiple of 32 (the largest stride)")
    return DetectionDataset(bench, split, "closed" if protocol == "closed" else "open", imgsz=imgsz,
                            augment=False, channels=channels)


def bind_categories(model: nn.Module, meta: ModelMeta, categories: Sequence[dict[str, Any]],
                    encoder: Callable[[], Any], class_text: str = "stored") -> PromptedModel:
    """The model prompted with the given categories' texts (an expert maps them onto its own classes).

    Args:
        model: the detector.
        meta: its checkpoint metadata.
        categories: the benchmark categories to prompt, in logit order.
        encoder: returns the text encoder (called only for rows the checkpoint does not store).
        class_text: ``"stored"``: the checkpoint's rows for its own class texts (what it was trained with, a text
            ensemble included), other texts encoded; ``"ensemble"``: every category as the mean embedding of its
            phrasings (``rtvp.vocabulary.class_text_variants``), encoded now, whatever the model was trained with.
    """
    texts = [str(c.get("text") or c.get("name")) for c in categories]
    if class_text not in ("stored", "ensemble"):
        raise ConfigError(f"class_text={class_text!r}: choose 'stored' (the checkpoint's rows) or 'ensemble'")
    if class_text == "stored" or meta.arch == "expert":
        return bind_prompts(model, meta, texts, encoder, resolve=False)[0]
    table = encode_class_ensembles(encoder(), categories)
    return PromptedModel(model, text=table).to(next(model.parameters()).device).train(model.training)


@torch.no_grad()
def run_split(prompted: PromptedModel, dataset: DetectionDataset, category_ids: Sequence[int], batch: int = 8,
              conf: float = EVAL_CONF, iou: float = EVAL_IOU, max_det: int = EVAL_MAX_DET,
              workers: int = 0) -> list[dict[str, Any]]:
    """COCO results of ``prompted`` over ``dataset``; prompt ``k`` is reported as ``category_ids[k]``."""
    device = next(prompted.parameters()).device
    was_training = prompted.model.training
    prompted.eval()
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=dataset.collator)
    results: list[dict[str, Any]] = []
    try:
        for b in loader:
            geo = Letterboxed(b.scales.double().numpy(), b.pads.numpy(), b.orig_sizes.numpy())
            images = b.images.to(device, non_blocking=True)
            dets, _ = run_batch(prompted, images, geo, [], conf, iou, max_det)
            for image_id, d in zip(b.image_ids, dets, strict=True):
                results += with_segmentation(coco_results(d, image_id, category_ids=category_ids), d)
    finally:
        prompted.train(was_training)
    return results


def with_segmentation(results: list[dict[str, Any]], dets: Detections) -> list[dict[str, Any]]:
    """Add each detection's mask as ``segmentation`` (COCO RLE, original pixels, ``counts`` str) to its result.

    Args:
        results: :func:`rtvp.predict.inputs.coco_results` of ``dets``, one per detection in the same order.
        dets: the image's detections; without masks (``dets.mask is None``) ``results`` come back unchanged.

    Returns:
        ``results``, updated in place (results that already carry a ``segmentation`` are kept as they are).
    """
    if dets.mask is None:
        return results
    if len(results) != len(dets):
        raise ValueError(f"with_segmentation: {len(results)} COCO results for {len(dets)} detections; pass "
                         "coco_results(dets, ...) of the same detections")
    from rtvp.masks import encode_rles

    for r, seg in zip(results, encode_rles(dets.mask), strict=True):
        r.setdefault("segmentation", seg)
    return results


def predict_split(weights: str | Path | dict, bench: Path, split: str, protocol: str, imgsz: int | None = None,
                  batch: int = 8, device: str = "cpu", workers: int = 0,
                  class_text: str = "stored") -> list[dict[str, Any]]:
    """Run a checkpoint over a benchmark split.

    Args:
        weights: checkpoint path or dict.
        bench: benchmark folder.
        split: split name, e.g. ``closed_val`` or ``open_val``.
        protocol: ``closed`` | ``open`` | ``generalized`` (picks the vocabulary, see the module docstring).
        imgsz: letterbox side (default: the checkpoint's training size).
        batch: images per forward pass.
        device: ``cpu`` | ``cuda`` | ``cuda:N``.
        workers: data-loading worker processes.
        class_text: ``"stored"`` or ``"ensemble"`` (see :func:`bind_categories`).

    Returns:
        COCO results (``image_id, category_id, bbox [x, y, w, h], score``, and ``segmentation`` as RLE in original
        pixels for a model with masks) that ``rtvp.evaluation.evaluator.evaluate`` accepts for that split.
    """
    model, meta = load_model(weights, resolve_device(device), fuse=True)
    dataset = split_dataset(Path(bench), split, protocol, int(imgsz or meta.imgsz), meta.in_channels)
    cats = [dataset.categories[i] for i in split_vocabulary(dataset.categories, protocol)]
    encoder = _lazy(lambda: build_encoder(meta, str(device)))
    prompted = bind_categories(model, meta, cats, encoder, class_text)
    return run_split(prompted, dataset, [int(c["id"]) for c in cats], batch, workers=workers)


def checkpoint_masks(weights: str | Path | Mapping[str, Any], results: Sequence[dict[str, Any]] | None = None) -> bool:
    """Whether a checkpoint (path or loaded dict) has the mask branch (``model_config.masks``).

    With ``results`` (its predictions), the checkpoint is read only when they are empty: a mask model's results
    otherwise carry ``segmentation`` themselves, which ``evaluate`` sees, so loading it again would be wasted.
    """
    from rtvp.checkpoint import load_checkpoint

    if results:
        return False
    ckpt = weights if isinstance(weights, Mapping) else load_checkpoint(weights)
    return bool((ckpt.get("model_config") or {}).get("masks", False))


def open_diagnostics(weights: str | Path | dict, bench: Path, split: str, results: Sequence[dict[str, Any]],
                     imgsz: int | None = None, batch: int = 8, device: str = "cpu",
                     class_text: str = "stored") -> dict[str, Any]:
    """Class-agnostic recall and (RTVPNet) oracle-box accuracy of the unseen classes on a split.

    See :mod:`rtvp.evaluation.diagnostics`; ``results`` are the split's COCO results (any protocol's);
    ``class_text`` picks the class embeddings of the oracle as in :func:`bind_categories`.

    Returns:
        The two diagnostics' dicts merged (``per_class`` merged per class); the oracle keys are None for an expert
        (no region embeddings).
    """
    from rtvp.evaluation.diagnostics import agnostic_recall, oracle_accuracy
    from rtvp.evaluation.evaluator import load_json

    gt = load_json(Path(bench) / "annotations" / f"{split}.json", "ground-truth")
    unseen = [c["id"] for c in gt["categories"] if c.get("split", "seen") == "unseen"]
    recall = agnostic_recall(gt, results, unseen)
    model, meta = load_model(weights, resolve_device(device), fuse=True)
    if meta.arch == "expert":
        return {**recall, "oracle_top1_scene": None, "oracle_top1_all": None,
                "oracle_note": "a closed-set expert has no region embeddings"}
    dataset = split_dataset(Path(bench), split, "open", int(imgsz or meta.imgsz), meta.in_channels)
    prompted = bind_categories(model, meta, dataset.categories, _lazy(lambda: build_encoder(meta, str(device))),
                               class_text)
    oracle = oracle_accuracy(prompted, dataset, dataset.categories, batch)
    per_class = {k: {**v, **oracle["per_class"].get(k, {})} for k, v in recall["per_class"].items()}
    return {**recall, **oracle, "per_class": per_class}


def meta_for_model(model: nn.Module, vocabulary: Sequence[str], text_embeddings: torch.Tensor | None = None,
                   imgsz: int = 640, text_encoder: TextEncoderSpec | str = "minilm") -> ModelMeta:
    """:class:`ModelMeta` of a live model (no checkpoint): its kind, vocabulary and (optional) text table."""
    if isinstance(model, ExpertDetector):
        return ModelMeta("expert", list(vocabulary), imgsz=imgsz, in_channels=model.expert.in_channels)
    table = None if text_embeddings is None else text_embeddings.detach().float().cpu()
    spec = text_encoder if isinstance(text_encoder, TextEncoderSpec) else TextEncoderSpec(str(text_encoder))
    return ModelMeta("rtvpnet", list(vocabulary), text_encoder=spec.name, text_encoder_options=spec.options(),
                     text_dim=model.text_dim, text_embeddings=table, imgsz=imgsz, in_channels=model.in_channels,
                     source="<live model>")


def make_eval_fn(bench: Path, protocol: str, imgsz: int = 640, batch: int = 8, device: str | None = None, *,
                 split: str | None = None, text_embeddings: torch.Tensor | None = None, text_encoder: Any = None,
                 text_encoder_name: TextEncoderSpec | str = "minilm",
                 workers: int = 0) -> Callable[..., dict[str, Any]]:
    """An evaluation function for the trainer's ``EvalHook`` (the trainer never imports the evaluator).

    Args:
        bench: benchmark folder.
        protocol: ``closed`` | ``open`` | ``generalized``.
        imgsz: letterbox side.
        batch: images per forward pass.
        device: unused (kept for a uniform signature): the live model is evaluated on its own device, never moved.
        split: split to evaluate (default: the protocol's val split).
        text_embeddings: ``(C, Dt)`` class-text table aligned with the ``vocabulary`` passed at call time (e.g. the
            trainer's); texts outside it are encoded with ``text_encoder``.
        text_encoder: a ``TextEncoder`` (default: ``text_encoder_name``'s, built on first need).
        text_encoder_name: the text encoder the model was trained with (registry name or spec with its path).
        workers: data-loading worker processes.

    Returns:
        ``eval_fn(model, vocabulary=None) -> metrics``: ``vocabulary`` are the model's class texts (the expert's
        classes, or the texts ``text_embeddings`` rows belong to; default: the benchmark's category texts). The
        metrics are ``rtvp.evaluation.evaluator.evaluate``'s dict (``AP``, ``AP50``, ... and per-class breakdowns).
    """
    from rtvp.evaluation.evaluator import evaluate, protocol_files

    val_json, train_json = protocol_files(Path(bench), protocol)
    split = split or val_json.stem
    state: dict[str, Any] = {"encoder": text_encoder}

    def eval_fn(model: nn.Module, vocabulary: Sequence[str] | None = None) -> dict[str, Any]:
        channels = model.expert.in_channels
        if state.get("dataset") is None:
            state["dataset"] = split_dataset(Path(bench), split, protocol, imgsz, channels)
        ds = state["dataset"]
        cats = [ds.categories[i] for i in split_vocabulary(ds.categories, protocol)]
        vocab = list(vocabulary) if vocabulary is not None else [str(c.get("text") or c.get("name"))
                                                                  for c in ds.categories]
        meta = meta_for_model(model, vocab, text_embeddings, imgsz, text_encoder_name)

        def encoder() -> Any:
            if state["encoder"] is None:
                state["encoder"] = build_encoder(meta, "cpu")
            return state["encoder"]

        prompted = bind_categories(model, meta, cats, encoder)
        results = run_split(prompted, ds, [int(c["id"]) for c in cats], batch, workers=workers)
        return evaluate(val_json, results, protocol, train_gt=train_json if train_json.is_file() else None,
                        masks=getattr(model, "seg", None) is not None)

    return eval_fn


def _lazy(factory: Callable[[], Any]) -> Callable[[], Any]:
    cache: list[Any] = []

    def get() -> Any:
        if not cache:
            cache.append(factory())
        return cache[0]

    return get

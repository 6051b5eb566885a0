"""Blocking work of the service, run off the event loop.

Concurrency model (documented in ``/v1/model`` as ``batching``): requests are **not batched**. Each request decodes
its image in one of ``workers`` threads (decoding runs in parallel); every predictor call holds one lock per model,
because ``set_prompts`` + ``predict`` change the predictor's text embeddings and must not interleave. At most
``workers + max_queue`` requests are admitted at once (an admitted ``/v1/ask`` keeps its slot while the answerer,
possibly a remote LLM, runs outside the lock); the rest get 503 ``busy`` with ``Retry-After``.
Per-request ``conf`` / ``iou`` are applied by setting the predictor's ``conf`` / ``iou`` attributes inside the
lock and restoring them afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol, TypeVar

import numpy as np

from rtvp.service.errors import ServiceError
from rtvp.service.settings import ServeSettings
from rtvp.structures import Detections
from rtvp.vocabulary import Resolved

T = TypeVar("T")
BATCHING = "not batched: decoding runs in parallel worker threads, inference is serialized by one lock per model"


class SupportsPredictor(Protocol):
    """The part of ``rtvp.predict.predictor.Predictor`` the service uses (optional: ``conf``, ``iou``, ``imgsz``)."""

    vocabulary: list[str]

    def set_prompts(self, prompts: list[str] | None) -> list[Resolved]:
        """Resolve and encode prompts (None: the checkpoint vocabulary)."""
        ...

    def predict(self, sources: list[Any], prompts: list[str] | None = None) -> list[Detections]:
        """Detections per source."""
        ...


class InferenceRunner:
    """Runs decode / predict work in threads with one predictor lock and a bounded admission count.

    Args:
        predictor: a ``Predictor`` (or anything implementing ``SupportsPredictor``).
        settings: ``workers`` and ``max_queue`` are used.
    """

    def __init__(self, predictor: SupportsPredictor, settings: ServeSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self.lock = threading.Lock()
        self.admitted = 0
        self._limiter: Any = None

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one admission slot; 503 ``busy`` when ``workers + max_queue`` are taken."""
        if self.admitted >= self.settings.workers + self.settings.max_queue:
            raise ServiceError(503, "busy", f"{self.admitted} requests are in progress or queued; retry shortly",
                               {"Retry-After": "1"})
        self.admitted += 1  # only touched on the event loop thread
        try:
            yield
        finally:
            self.admitted -= 1

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in one of the ``workers`` threads (the caller holds an admission slot)."""
        import anyio

        if self._limiter is None:  # created inside the event loop (anyio needs a running backend)
            self._limiter = anyio.CapacityLimiter(self.settings.workers)
        return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=self._limiter)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Admit the request, then run ``fn(*args)`` in a worker thread."""
        async with self.admit():
            return await self.in_worker(fn, *args)

    @contextmanager
    def locked(self, conf: float | None = None, iou: float | None = None) -> Iterator[SupportsPredictor]:
        """Hold the predictor lock, with ``conf`` / ``iou`` temporarily overridden when given."""
        with self.lock:
            saved = {}
            for name, value in (("conf", conf), ("iou", iou)):
                if value is not None:
                    if not hasattr(self.predictor, name):
                        raise ServiceError(422, "unsupported_option", f"this model does not take a per-request "
                                                                      f"'{name}'; leave it out")
                    saved[name] = getattr(self.predictor, name)
                    setattr(self.predictor, name, value)
            try:
                yield self.predictor
            finally:
                for name, value in saved.items():
                    setattr(self.predictor, name, value)

    def detect(self, image: np.ndarray, prompts: list[str] | None, conf: float | None = None,
               iou: float | None = None,
               exemplars: list[dict[str, Any]] | None = None) -> tuple[Detections, list[Resolved], float]:
        """Detect in one ``(H, W, 3)`` uint8 RGB image.

        Args:
            image: the image.
            prompts: prompts as typed (None: the model vocabulary).
            conf: per-request score threshold.
            iou: per-request NMS IoU threshold.
            exemplars: ``[{"box": [x1, y1, x2, y2], "name": ...}]`` boxes on ``image`` to find more of.

        Returns:
            ``(detections, prompt resolutions, inference milliseconds)``.
        """
        with self.locked(conf, iou) as predictor:
            t0 = time.perf_counter()
            if exemplars:
                if not hasattr(predictor, "set_exemplars"):
                    raise ServiceError(422, "unsupported_option", "this model does not take exemplars (an exported "
                                                                  "file: its prompts are baked in); leave them out")
                from rtvp.predict.exemplars import Exemplar

                predictor.set_exemplars([Exemplar(image, e["box"], e.get("name")) for e in exemplars], prompts)
                resolved, prompts = list(predictor.resolved), None  # None keeps the exemplar prompts active
            else:
                resolved = list(predictor.set_prompts(prompts))
            results = predictor.predict([image], prompts=prompts)
            ms = (time.perf_counter() - t0) * 1000.0
        if not results:  # the predictor skipped the image (it logs why)
            raise ServiceError(400, "bad_image", "the model could not read this image (see the server log)")
        dets = results[0]
        if conf is not None:  # exact even if the predictor ignored it: NMS keeps higher scores first
            dets = dets[dets.confidence >= conf]
        return dets, resolved, ms

    def ground(self, image: np.ndarray, query: str, top_k: int) -> tuple[Any, list[Any], float]:
        """Ground ``query`` in one image: ``(parsed query, grounded boxes best first, inference milliseconds)``."""
        from rtvp.tasks.grounding import ground, parse_query

        parsed = parse_query(query)
        height, width = image.shape[:2]
        with self.locked() as predictor:
            t0 = time.perf_counter()
            boxes = ground(predictor, image, query, top_k=top_k, size=(width, height))
            ms = (time.perf_counter() - t0) * 1000.0
        return parsed, boxes, ms


def model_info(predictor: Any, settings: ServeSettings) -> dict[str, Any]:
    """Fields of ``/v1/model`` read from the predictor (missing attributes -> None)."""
    from rtvp import __version__
    from rtvp.vocabulary import MAX_PROMPT_CHARS

    meta = getattr(predictor, "meta", predictor)  # Predictor keeps checkpoint facts in .meta (ModelMeta)
    encoder = getattr(meta, "text_encoder", None)
    version = getattr(meta, "version", None)
    return {
        "name": settings.model_name,
        "version": str(version or __version__),
        "rtvp_version": __version__,
        "vocabulary": list(getattr(predictor, "vocabulary", []) or []),
        "input_size": getattr(predictor, "imgsz", None),
        "device": str(getattr(predictor, "device", "") or "") or None,
        "arch": getattr(meta, "arch", None),
        "text_encoder": encoder if isinstance(encoder, str) else getattr(encoder, "name", None),
        "conf": getattr(predictor, "conf", None),
        "iou": getattr(predictor, "iou", None),
        "batching": BATCHING,
        "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                   "content_types": list(settings.content_types), "max_prompts": settings.max_prompts,
                   "max_prompt_chars": MAX_PROMPT_CHARS, "body_timeout_s": settings.body_timeout_s},
    }

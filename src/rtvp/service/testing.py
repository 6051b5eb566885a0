"""``FakePredictor``: a deterministic stand-in with the ``Predictor`` interface, for exercising the HTTP layer.

Used by the service tests, the browser test and ``benchmarks/serve_load.py --fake`` (no checkpoint, no torch).
Prompt ``i`` yields one box on a 3-column grid (``x1 = (0.05 + 0.32 * (i % 3)) * W``, ``y1 = (0.1 + 0.3 * (i // 3
% 3)) * H``, size ``0.25 W x 0.2 H``) with confidence ``0.9 - 0.07 * i``; ``conf`` filters them. With
``masks=True`` each box also has a mask: a 3-px horizontal strip through the box, rows ``round(yc) - 1`` to
``round(yc) + 1`` (``yc`` the box centre's y) and columns ``round(x1)`` to ``round(x2) - 1``, clipped to the image.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from rtvp.structures import Detections
from rtvp.vocabulary import Resolved, Vocabulary


class FakePredictor:
    """Predictor look-alike.

    Args:
        vocabulary: class texts used when no prompts are given.
        delay_s: simulated inference time per ``predict`` call.
        conf: confidence threshold (read at ``predict`` time, like the real one).
        iou: NMS threshold (reported only).
        masks: also return instance masks (``Detections.mask``), like a model with a mask branch.

    Attributes:
        calls: number of ``predict`` calls.
        overlaps: ``predict`` calls that started while another was running (must stay 0 behind the service lock).
    """

    def __init__(self, vocabulary: list[str] | None = None, delay_s: float = 0.0, conf: float = 0.25,
                 iou: float = 0.7, masks: bool = False) -> None:
        self.vocabulary = list(vocabulary or ["scratch on steel", "hole in wood", "crack on tile"])
        self.delay_s, self.conf, self.iou, self.masks = delay_s, conf, iou, masks
        self.imgsz, self.device, self.text_encoder, self.version, self.arch = 320, "cpu", "hash", "fake-1", "rtvpnet"
        self.calls = self.overlaps = 0
        self._active = 0
        self._count_lock = threading.Lock()
        self._prompts: list[str] = self.vocabulary
        self.last_exemplars: list[tuple[tuple[float, ...], str | None]] = []

    def set_prompts(self, prompts: list[str] | None) -> list[Resolved]:
        """Resolve prompts through the shipped vocabulary (None: this predictor's vocabulary)."""
        self._prompts = list(prompts) if prompts else self.vocabulary
        return Vocabulary.default().resolve_all(self._prompts)

    def set_exemplars(self, exemplars: list[Any], prompts: list[str] | None = None) -> list[str]:
        """Exemplar prompts (``Exemplar``s): one prompt per name after ``prompts``; boxes kept in ``last_exemplars``."""
        from rtvp.vocabulary import Resolved

        self.last_exemplars = [(tuple(e.box), e.name) for e in exemplars]
        names = list(dict.fromkeys(e.name or "exemplar" for e in exemplars))
        self.resolved = (Vocabulary.default().resolve_all(list(prompts)) if prompts else []) + [
            Resolved(n, n, None, "exemplar") for n in names]
        self._prompts = [r.prompt for r in self.resolved]
        return list(self._prompts)

    def predict(self, sources: list[Any], prompts: list[str] | None = None,
                save_maps: bool = False) -> list[Detections]:
        """One box per prompt per image (``sources``: ``(H, W, C)`` arrays)."""
        with self._count_lock:
            self.calls += 1
            self._active += 1
            self.overlaps += int(self._active > 1)
        try:
            if prompts is not None:
                self.set_prompts(prompts)
            if self.delay_s:
                time.sleep(self.delay_s)
            return [self._one(np.asarray(src).shape) for src in sources]
        finally:
            with self._count_lock:
                self._active -= 1

    def _one(self, shape: tuple[int, ...]) -> Detections:
        h, w = shape[:2]
        i = np.arange(len(self._prompts))
        x1, y1 = (0.05 + 0.32 * (i % 3)) * w, (0.1 + 0.3 * (i // 3 % 3)) * h
        xyxy = np.stack([x1, y1, x1 + 0.25 * w, y1 + 0.2 * h], 1)
        conf = np.clip(0.9 - 0.07 * i, 0.01, 1.0)
        keep = conf >= self.conf
        mask = None
        if self.masks:
            mask = np.zeros((len(i), h, w), bool)
            for k, (bx1, by1, bx2, by2) in enumerate(xyxy.tolist()):
                yc = round((by1 + by2) / 2)
                mask[k, max(yc - 1, 0):yc + 2, round(bx1):round(bx2)] = True
            mask = mask[keep]
        return Detections(xyxy[keep], conf[keep], i[keep], list(self._prompts), mask=mask)

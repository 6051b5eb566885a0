"""Resumable per-image prediction cache of ``rtvp data autolabel``: chunked JSONL files, one line per image.

Line: ``{"image_id": 12, "boxes": [[x1, y1, x2, y2], ...], "scores": [...], "cats": [category ids]}`` (original
pixels), or ``{"image_id": 12, "error": "..."}`` for an unreadable image. Each run writes new ``part-NNNNN.jsonl``
files (at most ``chunk`` lines each) and never appends to an old one, so a line cut short by an interruption is
ignored on load (that image is simply predicted again); later lines win over earlier ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from rtvp.annotate.agreement import ImageLabels
from rtvp.errors import ConfigError


class PredictionCache:
    """The cache folder of one model.

    Args:
        folder: where the ``part-*.jsonl`` files live.
        chunk: lines per file.
    """

    def __init__(self, folder: str | Path, chunk: int = 512) -> None:
        self.folder, self.chunk = Path(folder), chunk

    def _lines(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.folder.glob("part-*.jsonl")):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # torn last line of an interrupted run
                    if isinstance(rec, dict) and "image_id" in rec:
                        yield rec

    def load(self) -> dict[int, ImageLabels | None]:
        """Image id -> its predictions (``None`` when the image was unreadable)."""
        out: dict[int, ImageLabels | None] = {}
        for rec in self._lines():
            iid = int(rec["image_id"])
            out[iid] = None if "error" in rec else ImageLabels(rec["boxes"], rec["scores"], rec["cats"])
        return out

    def done(self) -> set[int]:
        """Ids of the images already in the cache."""
        return {int(rec["image_id"]) for rec in self._lines()}

    @contextmanager
    def writer(self) -> Iterator[Any]:
        """``write(record)`` appending to fresh part files (flushed per line, rotated every ``chunk`` lines)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        index = len(list(self.folder.glob("part-*.jsonl")))
        state: dict[str, Any] = {"file": None, "n": 0, "index": index}

        def write(rec: dict[str, Any]) -> None:
            f: IO[str] | None = state["file"]
            if f is None or state["n"] >= self.chunk:
                if f is not None:
                    f.close()
                f = open(self.folder / f"part-{state['index']:05d}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
                state.update(file=f, n=0, index=state["index"] + 1)
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            f.flush()
            state["n"] += 1

        try:
            yield write
        finally:
            if state["file"] is not None:
                state["file"].close()


def class_map(vocabulary: list[str], categories: list[dict[str, Any]], arch: str, where: str) -> np.ndarray:
    """``(K,)`` benchmark category id of each class of a checkpoint vocabulary (-1: not a benchmark class)."""
    by_key: dict[str, int] = {}
    for c in categories:
        for key in (c.get("text"), c.get("name")):
            if key:
                by_key.setdefault(str(key), int(c["id"]))
    ids = np.array([by_key.get(t, -1) for t in vocabulary], dtype=np.int64)
    if not (ids >= 0).any():
        raise ConfigError(f"{where}: none of the {arch} checkpoint's classes {vocabulary[:5]} is a class of the "
                          "benchmark; train it on this benchmark (or leave --weights-* out)")
    return ids


def predict_missing(cache: PredictionCache, weights: Path, model: str, bench: Path, images: list[dict[str, Any]],
                    categories: list[dict[str, Any]], cfg: Any, progress: bool = True) -> int:
    """Predict the images not yet in ``cache`` with one checkpoint and append them; returns how many were run.

    RTVPNet checkpoints are prompted with the benchmark's class texts (category order); a closed-set expert uses
    its own classes, mapped onto the benchmark's by text or name.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rtvp.device import resolve_device
    from rtvp.predict.predictor import Predictor

    done = cache.done()
    pending = [im for im in images if im["id"] not in done]
    if not pending:
        return 0
    pred = Predictor(weights, device=str(resolve_device(cfg.device)), imgsz=cfg.imgsz, conf=cfg.conf, batch=cfg.batch)
    if pred.meta.arch == "rtvpnet":
        prompts: list[str] | None = [str(c.get("text") or c["name"]) for c in categories]
        to_cat = np.array([int(c["id"]) for c in categories], dtype=np.int64)
    else:
        prompts, to_cat = None, class_map(pred.vocabulary, categories, "expert", str(weights))
    pred.set_prompts(prompts)
    columns = (TextColumn(f"[bold]predict {model}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with cache.writer() as write, Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(model, total=len(pending))
        for start in range(0, len(pending), cache.chunk):
            part = pending[start : start + cache.chunk]
            ids = {str(bench / im["file_name"]): int(im["id"]) for im in part}
            seen = set()
            for p in pred.stream([bench / im["file_name"] for im in part]):
                d = p.detections
                cats = to_cat[d.class_id] if len(d) else np.zeros(0, dtype=np.int64)
                keep = cats >= 0
                iid = ids[str(p.source)]
                write({"image_id": iid, "boxes": np.round(d.xyxy[keep].astype(float), 2).tolist(),
                       "scores": np.round(d.confidence[keep].astype(float), 5).tolist(), "cats": cats[keep].tolist()})
                seen.add(iid)
                bar.advance(task)
            for im in part:
                if im["id"] not in seen:
                    write({"image_id": int(im["id"]), "error": "unreadable"})
                    bar.advance(task)
    return len(pending)

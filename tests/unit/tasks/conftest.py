"""Fixtures for the downstream-task tests: hand-built detections, a fake predictor, a local chat-completions stub."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from rtvp.structures import Detections
from rtvp.vocabulary import Vocabulary


class FakePredictor:
    """Returns pre-set Detections per (image name, prompt) and records every call."""

    def __init__(self, table: dict[tuple[str, str | None], Detections], vocabulary: list[str] | None = None):
        self.table = table
        self.vocabulary = vocabulary or []
        self.calls: list[tuple[str, list[str] | None]] = []
        self.set_calls: list[list[str] | None] = []

    def set_prompts(self, prompts):
        self.set_calls.append(prompts)
        return Vocabulary.default().resolve_all(list(prompts) if prompts is not None else self.vocabulary)

    def predict(self, sources, prompts=None, save_maps=False):
        out = []
        for src in sources:
            name = Path(src).name if not isinstance(src, np.ndarray) else "<array>"
            self.calls.append((name, prompts))
            key = (name, prompts[0] if prompts else None)
            out.append(self.table.get(key, Detections.empty(prompts or self.vocabulary)))
        return out


@pytest.fixture
def fake_predictor():
    return FakePredictor


@pytest.fixture
def scene_dets() -> Detections:
    """300x300 image: #1 crack elongated along the top, #2 hole at the left edge, #3 small crack in the center."""
    return Detections([[10, 10, 200, 20], [0, 100, 40, 140], [150, 150, 160, 160]], [0.9, 0.5, 0.3], [0, 1, 0],
                      ["crack on magnetic tile", "hole in wood"])


@pytest.fixture
def tiny_bench(tmp_path) -> Path:
    """Two 300x300 images: a.png holds one crack (top-left) and one hole (center, unseen); b.png two cracks."""
    cats = [{"id": 1, "name": "crack", "text": "crack", "split": "seen"},
            {"id": 2, "name": "hole", "text": "hole", "split": "unseen"}]
    images = [{"id": 1, "file_name": "images/a.png", "width": 300, "height": 300},
              {"id": 2, "file_name": "images/b.png", "width": 300, "height": 300}]

    def ann(i, img, cat, bbox, loc):
        return {"id": i, "image_id": img, "category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0,
                "attributes": {"location": loc, "size": "medium", "morphology": "irregular"}}

    anns = [ann(1, 1, 1, [10, 10, 40, 40], "top-left"), ann(2, 1, 2, [130, 130, 40, 40], "center"),
            ann(3, 2, 1, [10, 10, 40, 40], "top-left"), ann(4, 2, 1, [200, 200, 50, 50], "bottom-right")]
    root = tmp_path / "bench"
    (root / "annotations").mkdir(parents=True)
    for name in ("closed_val", "open_val"):
        (root / "annotations" / f"{name}.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": cats}))
    return root


@pytest.fixture
def grounding_table() -> dict:
    """Fake detections per (image, prompt) for ``tiny_bench``: 2 of the 3 grounding queries are right."""
    return {
        # a.png, crack once -> "crack at the top-left": the confident bottom-right box is wrong, the location prior
        # promotes the top-left one (IoU 1 with the GT) -> correct
        ("a.png", "crack"): Detections([[250, 250, 290, 290], [10, 10, 50, 50]], [0.9, 0.6], [0, 0], ["crack"]),
        # a.png, hole once -> "hole in the center": box shifted by 30 px -> IoU 100 / 3100 = 0.03 -> wrong
        ("a.png", "hole"): Detections([[160, 160, 200, 200]], [0.8], [0], ["hole"]),
        # b.png, crack twice -> plain "crack": top-1 overlaps the second GT (IoU 1600 / 2500 = 0.64) -> correct
        ("b.png", "crack"): Detections([[200, 200, 240, 240]], [0.7], [0], ["crack"]),
    }


class _Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int, object, float]] = []  # (status, body, delay) consumed per request
        self.default: tuple[int, object, float] = (200, "ok [#1]", 0.0)
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):  # noqa: N802
        server: _Stub = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
        status, reply, delay = server.script.pop(0) if server.script else server.default
        time.sleep(delay)
        if isinstance(reply, str) and status == 200:
            payload = json.dumps({"id": "x", "object": "chat.completion", "model": "stub",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                               "finish_reason": "stop"}]}).encode()
        else:
            payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass


@pytest.fixture
def llm_stub(monkeypatch):
    """A chat-completions server on a free 127.0.0.1 port speaking ``/v1/chat/completions``."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = _Stub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()

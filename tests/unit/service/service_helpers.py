"""Helpers shared by the service tests (image bytes)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from PIL import Image


def encode(img: np.ndarray | Image.Image, fmt: str = "PNG", **kw) -> bytes:
    """Image (array or PIL) -> file bytes in ``fmt``."""
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def grey(width: int = 200, height: int = 100, value: int = 120) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(app, port: int):
    """Run ``app`` with uvicorn on 127.0.0.1:``port`` in a thread; yields the base URL, stops the server after."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

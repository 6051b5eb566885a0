"""A request whose body stalls gets 408 and its connection closed (raw socket against uvicorn on 127.0.0.1).

Before the body read timeout, such a request held its connection with no reply for as long as the client liked.
"""

from __future__ import annotations

import socket
import time

import pytest
from service_helpers import free_port, served

from rtvp.errors import ConfigError
from rtvp.service import ServeSettings, create_app
from rtvp.service.testing import FakePredictor

TIMEOUT_S = 1.0


@pytest.fixture
def server_port():
    port = free_port()
    app = create_app(FakePredictor(), ServeSettings(port=port, body_timeout_s=TIMEOUT_S))
    with served(app, port):
        yield port


def _read_all(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``limit_s``)."""
    sock.settimeout(limit_s)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"no reply / connection still open after {limit_s} s; got {b''.join(chunks)[:200]!r}")
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize("sent", [b"", b"--b\r\nContent-Disposition: form-data; name=\"prompts\"\r\n\r\nhole\r\n"])
def test_stalled_body_gets_408_and_the_connection_closes(server_port, sent):
    head = (f"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1:{server_port}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server_port), timeout=5) as sock:
        t0 = time.monotonic()
        sock.sendall(head + sent)  # then nothing more: 5000 bytes promised, the body never completes
        reply = _read_all(sock, limit_s=TIMEOUT_S + 10)
        waited = time.monotonic() - t0
    status, _, rest = reply.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408"), reply[:300]
    assert b"connection: close" in rest.lower()
    assert b'"request_timeout"' in reply and b"nothing received for 1 s" in reply
    assert TIMEOUT_S * 0.8 <= waited < TIMEOUT_S + 5


def test_a_complete_body_after_a_pause_shorter_than_the_timeout_is_served(server_port):
    from service_helpers import encode, grey

    png = encode(grey(40, 30))
    body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png"
            b"\r\n\r\n" + png + b"\r\n--b--\r\n")
    head = (f"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server_port), timeout=5) as sock:
        sock.sendall(head + body[:20])
        time.sleep(TIMEOUT_S / 2)
        sock.sendall(body[20:])
        reply = _read_all(sock, limit_s=10)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_body_timeout_must_be_positive(bad):
    with pytest.raises(ConfigError, match="body_timeout_s must be > 0"):
        ServeSettings(body_timeout_s=bad)

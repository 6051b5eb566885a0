"""Limits and bad input: every violation is a 4xx JSON error, never a 500 (TestClient, fake predictor)."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image
from service_helpers import encode, grey


def post(client, image: bytes, ctype="image/png", path="/v1/detect", **fields):
    fields = fields or {"prompts": "hole"}
    return client.post(path, files={"image": ("part.png", image, ctype)}, data={k: str(v) for k, v in fields.items()})


def error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` followed by a broken IDAT (only the header is valid)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x00" * 16) + chunk(b"IEND", b"")


def test_upload_over_limit_413_from_content_length(make_client):
    client = make_client(max_upload_bytes=10_000)
    msg = error(post(client, b"\x89PNG" + b"\x00" * 200_000), 413, "payload_too_large")
    assert "limit" in msg


def test_upload_over_limit_413_streamed_without_length(make_client):
    client = make_client(max_upload_bytes=10_000)
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def body():  # a generator body is sent chunked: no Content-Length for the guard to read
        yield head
        for _ in range(20):
            yield b"\x00" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post("/v1/detect", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    error(r, 413, "payload_too_large")


def test_file_part_over_limit_with_small_body_cap(make_client, png):
    client = make_client(max_upload_bytes=len(png) - 1)  # body fits the overhead allowance, the file does not
    error(post(client, png), 413, "payload_too_large")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixels_over_limit_checked_from_header(make_client):
    client = make_client(max_pixels=100 * 100)
    msg = error(post(client, encode(grey(101, 100))), 413, "image_too_large")
    assert "101x100" in msg
    assert post(client, encode(grey(100, 100))).status_code == 200
    # header claims 12000 x 12000 with no valid pixel data: rejected before any decode
    msg = error(post(make_client(), png_header(12_000, 12_000)), 413, "image_too_large")
    assert "144,000,000" in msg


def test_decompression_bomb_header(client):
    error(post(client, png_header(100_000, 100_000)), 413, "image_too_large")


@pytest.mark.parametrize("ctype", ["text/plain", "application/octet-stream", "image/gif", "image/svg+xml", ""])
def test_wrong_content_type_415(client, png, ctype):
    msg = error(post(client, png, ctype=ctype or "application/x-empty"), 415, "unsupported_media_type")
    assert "image/png" in msg


def test_declared_png_but_gif_bytes_415(client):
    gif = encode(Image.fromarray(grey(20, 20)), "GIF")
    msg = error(post(client, gif), 415, "unsupported_media_type")
    assert "GIF" in msg


def test_content_types_setting(make_client, png):
    client = make_client(content_types=("image/jpeg",))
    error(post(client, png), 415, "unsupported_media_type")
    jpg = encode(grey(), "JPEG")
    assert post(client, jpg, ctype="image/jpeg").status_code == 200
    error(post(client, png, ctype="image/jpeg"), 415, "unsupported_media_type")  # bytes are PNG


@pytest.mark.parametrize("data,code", [
    (b"", "empty_image"),
    (b"this is not an image at all", "bad_image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "bad_image"),
])
def test_not_an_image_400(client, data, code):
    error(post(client, data), 400, code)


def test_truncated_images_400(client):
    for fmt, ctype in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        full = encode(grey(300, 200, 90) + (grey(300, 200, 1) * 37 % 255).astype("uint8"), fmt)
        error(post(client, full[: len(full) // 2], ctype=ctype), 400, "bad_image")
    error(post(client, png_header(64, 64)), 400, "bad_image")  # valid header, corrupt pixel data


@pytest.mark.parametrize("path,fields,where", [
    ("/v1/detect", {"prompts": "hole", "conf": 1.5}, "conf"),
    ("/v1/detect", {"prompts": "hole", "iou": 0}, "iou"),
    ("/v1/detect", {"prompts": "hole", "conf": "high"}, "conf"),
    ("/v1/ground", {"top_k": 1}, "query"),
    ("/v1/ground", {"query": "crack", "top_k": 0}, "top_k"),
    ("/v1/ask", {"prompts": "hole"}, "question"),
    ("/v1/ask", {"question": "x" * 1001}, "question"),
])
def test_invalid_fields_422(client, png, path, fields, where):
    msg = error(post(client, png, path=path, **fields), 422, "invalid_request")
    assert where in msg


def test_missing_image_422(client):
    msg = error(client.post("/v1/detect", data={"prompts": "hole"}), 422, "invalid_request")
    assert "image" in msg


def test_prompt_limits_422(make_client, png):
    client = make_client(max_prompts=3)
    error(post(client, png, prompts="a,b,c,d"), 422, "too_many_prompts")
    msg = error(post(client, png, prompts="x" * 201), 422, "invalid_input")  # rtvp.vocabulary's 200-char limit
    assert "200" in msg
    assert post(client, png, prompts=" , ,").status_code == 200  # blank -> the model vocabulary


@pytest.mark.parametrize("path,field", [("/v1/ground", "query"), ("/v1/ask", "question")])
@pytest.mark.parametrize("blank", ["   ", "\t\n", "\u3000"])
def test_blank_query_and_question_422_alike(client, png, path, field, blank):
    """One rule for both: whitespace-only text is rejected before any inference (it used to reach /v1/ask)."""
    msg = error(post(client, png, path=path, **{field: blank}), 422, "invalid_request")
    assert msg.startswith(f"{field}: ") and "blank" in msg


@pytest.mark.parametrize("field,value,interval", [
    ("conf", "nan", "[0, 1]"), ("conf", "inf", "[0, 1]"), ("conf", "-0.1", "[0, 1]"), ("conf", "1.5", "[0, 1]"),
    ("iou", "nan", "(0, 1]"), ("iou", "0", "(0, 1]"), ("iou", "-inf", "(0, 1]"),
])
def test_thresholds_name_their_interval(client, png, field, value, interval):
    msg = error(post(client, png, prompts="hole", **{field: value}), 422, "invalid_request")
    assert msg.startswith(f"{field}: ") and f"a number in {interval}" in msg and value in msg


def test_unknown_route_and_method_json(client):
    error(client.get("/v1/nothing"), 404, "not_found")
    error(client.get("/v1/detect"), 405, "method_not_allowed")


class Exploding:
    vocabulary = ["scratch"]

    def set_prompts(self, prompts):
        raise RuntimeError("secret internal detail")

    def predict(self, sources, prompts=None):  # pragma: no cover - never reached
        return []


def test_bug_is_json_500_without_internals(make_client, png, caplog):
    client = make_client(raise_server_exceptions=False, predictor=Exploding())
    msg = error(post(client, png), 500, "internal_error")
    assert "secret" not in msg
    assert any("secret internal detail" in str(rec.exc_info) for rec in caplog.records if rec.exc_info)


class Skipping(Exploding):
    def set_prompts(self, prompts):
        return []

    def predict(self, sources, prompts=None):
        return []  # the real Predictor skips unreadable inputs instead of raising


def test_predictor_skipping_image_is_400(make_client, png):
    error(post(make_client(predictor=Skipping()), png), 400, "bad_image")


def test_llm_failure_is_502(make_client, png):
    from rtvp.tasks.llm import LLMError

    class Down:
        def answer(self, question, facts):
            raise LLMError("http://127.0.0.1:9/v1/chat/completions: connection refused")

    client = make_client()
    client.app.state.answerer = Down()
    msg = error(post(client, png, path="/v1/ask", question="why?"), 502, "llm_unavailable")
    assert "connection refused" in msg

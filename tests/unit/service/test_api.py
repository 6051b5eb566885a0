"""API success paths, OpenAPI, auth (TestClient over create_app with the fake predictor)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from service_helpers import encode, grey

from rtvp.service.inference import BATCHING


def post(client, path, image: bytes, ctype="image/png", headers=None, **fields):
    return client.post(path, files={"image": ("part.png", image, ctype)},
                       data={k: str(v) for k, v in fields.items()}, headers=headers or {})


def test_health_and_model(client, fake):
    assert client.get("/health").json() == {"status": "ok", "version": __import__("rtvp").__version__}
    m = client.get("/v1/model").json()
    assert m["vocabulary"] == fake.vocabulary
    assert (m["input_size"], m["device"], m["text_encoder"], m["version"], m["arch"]) == (
        320, "cpu", "hash", "fake-1", "rtvpnet")
    assert m["batching"] == BATCHING
    assert m["limits"]["content_types"] == ["image/png", "image/jpeg", "image/bmp", "image/tiff", "image/webp"]


def test_detect_boxes_mapping_and_ids(client, png):
    r = post(client, "/v1/detect", png, prompts="划痕, hole ,scratches")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 200, "height": 100}
    assert [(p["prompt"], p["canonical"]) for p in body["prompts"]] == [
        ("划痕", "scratch"), ("hole", "hole"), ("scratches", "scratch")]
    dets = body["detections"]
    assert [d["id"] for d in dets] == [0, 1, 2]
    assert [d["label"] for d in dets] == ["划痕", "hole", "scratches"]
    assert [d["canonical"] for d in dets] == ["scratch", "hole", "scratch"]
    # fake predictor: prompt i -> x1 = (0.05 + 0.32 i) W, y1 = 0.1 H, size 0.25 W x 0.2 H, conf 0.9 - 0.07 i
    assert dets[0]["box"] == [10.0, 10.0, 60.0, 30.0]
    assert dets[1]["box"] == [74.0, 10.0, 124.0, 30.0]
    assert [d["confidence"] for d in dets] == pytest.approx([0.9, 0.83, 0.76])
    assert body["timing"]["inference_ms"] >= 0


def test_detect_without_prompts_uses_vocabulary(client, png, fake):
    dets = post(client, "/v1/detect", png).json()["detections"]
    assert [d["label"] for d in dets] == fake.vocabulary


def test_conf_is_per_request_and_restored(client, png, fake):
    dets = post(client, "/v1/detect", png, prompts="scratch,hole,crack", conf=0.8).json()["detections"]
    assert [d["label"] for d in dets] == ["scratch", "hole"]
    assert fake.conf == 0.25  # the override lives only inside the request's lock
    low = post(client, "/v1/detect", png, prompts=",".join(f"p{i}" for i in range(12)), conf=0.05).json()
    assert len(low["detections"]) == 12  # below the server default 0.25: the predictor ran at 0.05


@pytest.mark.parametrize("fmt,mode", [("JPEG", "RGB"), ("PNG", "L"), ("PNG", "RGBA"), ("BMP", "RGB"),
                                      ("TIFF", "RGB"), ("WEBP", "RGB"), ("PNG", "I;16")])
def test_formats_and_modes(client, fmt, mode):
    arr = grey(64, 48)
    if mode == "I;16":
        im = Image.fromarray(arr[:, :, 0].astype(np.uint16) * 200).convert("I;16")
    else:
        im = Image.fromarray(arr).convert(mode)
    ctype = "image/" + fmt.lower()
    r = post(client, "/v1/detect", encode(im, fmt), ctype=ctype, prompts="hole")
    assert r.status_code == 200, r.text
    assert r.json()["image"] == {"width": 64, "height": 48}


def test_exif_orientation_applied(client):
    im = Image.fromarray(grey(80, 40))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90: the browser shows it 40 x 80
    r = post(client, "/v1/detect", encode(im, "JPEG", exif=exif), ctype="image/jpeg", prompts="hole")
    assert r.json()["image"] == {"width": 40, "height": 80}


def test_ground(client, png):
    r = post(client, "/v1/ground", png, query="crack near the left edge", top_k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["phrase"], body["defect"], body["constraints"]) == ("crack", "crack", "near the left edge")
    assert [(b["rank"], b["index"]) for b in body["boxes"]] == [(1, 0)]
    assert body["boxes"][0]["box"] == [10.0, 10.0, 60.0, 30.0]
    assert body["boxes"][0]["score"] == pytest.approx(0.9 * body["boxes"][0]["prior"], abs=1e-3)


def test_ask_cites_boxes(client, png):
    r = post(client, "/v1/ask", png, question="how many holes?", prompts="scratch,hole")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == "1 hole [#1]."
    assert body["box_ids"] == [1]
    assert body["answerer"] == "offline"
    assert [d["label"] for d in body["detections"]] == ["scratch", "hole"]
    assert [b["id"] for b in body["facts"]["boxes"]] == [d["id"] for d in body["detections"]]  # same ids
    assert body["facts"]["boxes"][1]["defect"] == "hole"


def test_ask_with_custom_answerer(make_client, png):
    from rtvp.tasks.vqa import Answer

    class Echo:
        def answer(self, question, facts):
            return Answer(f"{question} -> {len(facts.boxes)}", facts.ids[:1], [], "echo")

    client = make_client()
    client.app.state.answerer = Echo()
    body = post(client, "/v1/ask", png, question="n?", prompts="a,b").json()
    assert (body["answer"], body["box_ids"], body["answerer"]) == ("n? -> 2", [0], "echo")


def test_openapi_served(client):
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/v1/model", "/v1/detect", "/v1/ground", "/v1/ask"):
        assert path in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert {"DetectResponse", "ErrorResponse", "ModelInfo", "AskResponse", "GroundResponse"} <= set(schemas)
    form = spec["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
    assert client.get("/docs").status_code == 404  # Swagger UI needs a CDN: off


def test_page_and_static(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'src="/static/app.js"' in r.text
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    page = r.text + client.get("/static/app.js").text + client.get("/static/app.css").text
    assert "http://" not in page and "https://" not in page  # nothing external


@pytest.fixture
def locked(make_client):
    return make_client(api_key="s3cret-key")


def test_auth_rejects_missing_and_wrong_keys(locked, png):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "s3cret"}, {"Authorization": "s3cret-key"}):
        r = locked.get("/v1/model", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert post(locked, "/v1/detect", png, headers=headers, prompts="hole").status_code == 401


def test_auth_accepts_bearer_and_header(locked, png):
    assert locked.get("/v1/model", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert locked.get("/v1/model", headers={"X-API-Key": "s3cret-key"}).status_code == 200
    r = post(locked, "/v1/ask", png, headers={"authorization": "bearer s3cret-key"}, question="what defects?")
    assert r.status_code == 200
    assert locked.get("/health").status_code == 200 and locked.get("/").status_code == 200


def test_auth_checked_before_body(locked):
    r = locked.post("/v1/detect", content=b"x" * (21 * 1024 * 1024),
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 401  # the guard answers before reading (or capping) the body


def test_openapi_documents_security_when_keyed(locked):
    spec = locked.get("/openapi.json").json()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert spec["paths"]["/v1/detect"]["post"]["security"]

"""``create_app(predictor, settings)``: the inspection service (composition root #2; imports no training code).

Routes: ``GET /health``, ``GET /v1/model``, ``POST /v1/detect``, ``POST /v1/ground``, ``POST /v1/ask``, the web page
at ``GET /`` (static files under ``/static``) and the OpenAPI schema at ``/openapi.json``. The interactive docs
(Swagger UI) are off because they load scripts from a CDN; the schema works with any offline OpenAPI viewer.

Examples:
    >>> from rtvp.service import ServeSettings, create_app
    >>> from rtvp.service.testing import FakePredictor
    >>> app = create_app(FakePredictor(), ServeSettings(api_key="s3cret"))
    >>> sorted(r.path for r in app.routes if r.path.startswith("/v1"))
    ['/v1/ask', '/v1/detect', '/v1/ground', '/v1/model']
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, File, Form, Security, UploadFile
from fastapi.responses import FileResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from rtvp import __version__
from rtvp.masks import measure_masks
from rtvp.service import schemas as S
from rtvp.service.errors import ServiceError, install_error_handlers
from rtvp.service.guard import GuardMiddleware, key_matches
from rtvp.service.images import check_content_type, decode_image
from rtvp.service.inference import InferenceRunner, SupportsPredictor, model_info
from rtvp.service.openapi import with_limits
from rtvp.service.settings import ServeSettings
from rtvp.tasks.facts import facts_from_detections
from rtvp.tasks.vqa import Answerer, OfflineAnswerer
from rtvp.vocabulary import parse_prompts

STATIC = Path(__file__).resolve().parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ImageUpload = Annotated[UploadFile, File(description="image file (PNG, JPEG, BMP, TIFF or WebP)")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": S.ErrorResponse, "description": text} for code, text in {
        400: "not an image / corrupt image", 401: "missing or wrong API key", 408: "request body stalled",
        413: "upload or image too large",
        415: "content type not accepted", 422: "invalid field", 503: "busy, retry"}.items()
}


def _auth_dependency(expected: str) -> Any:
    """A dependency that documents both auth schemes in OpenAPI and re-checks the key (the guard checks first)."""

    def require_key(
        bearer: HTTPAuthorizationCredentials | None = Security(HTTPBearer(auto_error=False)),
        x_api_key: str | None = Security(APIKeyHeader(name="X-API-Key", auto_error=False)),
    ) -> None:
        if not (key_matches(bearer.credentials if bearer else None, expected) or key_matches(x_api_key, expected)):
            raise ServiceError(401, "unauthorized", "missing or wrong API key", {"WWW-Authenticate": "Bearer"})

    return require_key


def create_app(
    predictor: SupportsPredictor,
    settings: ServeSettings | None = None,
    answerer: Answerer | None = None,
) -> FastAPI:
    """Build the service around a predictor.

    Args:
        predictor: ``rtvp.predict.predictor.Predictor`` or any object with ``vocabulary``, ``set_prompts`` and
            ``predict`` (see ``rtvp.service.inference.SupportsPredictor``).
        settings: limits, API key and workers (default: ``ServeSettings()``).
        answerer: VQA answerer for ``/v1/ask`` (default: ``OfflineAnswerer()``; or ``rtvp.tasks.LLMAnswerer``).

    Returns:
        The FastAPI app; serve it with uvicorn (``rtvp serve`` does).
    """
    settings = settings or ServeSettings()
    runner = InferenceRunner(predictor, settings)
    app = FastAPI(title="rtvp inspection service", version=__version__, docs_url=None, redoc_url=None,
                  description="Open-vocabulary defect detection, grounding and grounded VQA. " + runner_doc())
    app.state.settings, app.state.runner = settings, runner
    app.state.answerer = answerer or OfflineAnswerer()
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes,
                       body_timeout_s=settings.body_timeout_s)
    deps = [Depends(_auth_dependency(settings.api_key))] if settings.api_key else []
    _add_meta_routes(app, deps)
    _add_task_routes(app, deps)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = with_limits(app.openapi, settings.content_types, settings.max_prompts)  # type: ignore[method-assign]
    return app


def runner_doc() -> str:
    """One line on concurrency for the OpenAPI description."""
    from rtvp.service.inference import BATCHING

    return f"Concurrency: {BATCHING}."


def _add_meta_routes(app: FastAPI, deps: list[Any]) -> None:
    settings: ServeSettings = app.state.settings

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/health", response_model=S.Health, tags=["meta"])
    def health() -> S.Health:
        """Liveness probe (no API key needed)."""
        return S.Health(version=__version__)

    @app.get("/v1/model", response_model=S.ModelInfo, responses=ERRORS, dependencies=deps, tags=["meta"])
    def model() -> S.ModelInfo:
        """Name, version, vocabulary, input size, thresholds, limits and the concurrency model."""
        return S.ModelInfo(**model_info(app.state.runner.predictor, settings))


async def _upload_bytes(upload: UploadFile, settings: ServeSettings) -> bytes:
    """The uploaded file's bytes after the content-type and size checks (415 / 413)."""
    check_content_type(upload.content_type, settings.content_types)
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ServiceError(413, "payload_too_large", f"image file is over {settings.max_upload_bytes:,} bytes; "
                                                     "upload a smaller image")
    return data


def _prompts(text: str | None, settings: ServeSettings) -> list[str] | None:
    """Comma-separated prompts -> list (None when empty: the model's vocabulary)."""
    prompts = parse_prompts(text) if text and text.strip() else []
    if len(prompts) > settings.max_prompts:
        raise ServiceError(422, "too_many_prompts", f"{len(prompts)} prompts given; the limit is "
                                                    f"{settings.max_prompts} per request")
    return prompts or None


def parse_exemplars(text: str | None, limit: int) -> list[dict[str, Any]] | None:
    """The ``exemplars`` form field -> ``[{"box": (x1, y1, x2, y2), "name": str | None}]`` (None when empty).

    Raises:
        ServiceError: 422 naming the entry and field (bad JSON, a bad box or name, more than ``limit`` entries).
    """
    if text is None or not text.strip():
        return None
    from rtvp.errors import DataError
    from rtvp.predict.exemplars import check_box

    def bad(message: str) -> ServiceError:
        return ServiceError(422, "invalid_exemplars", f"exemplars: {message}; expected a JSON list like "
                                                      '[{"box": [x1, y1, x2, y2], "name": "spur"}]')

    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad(f"not JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(items, list) or not items:
        raise bad("not a non-empty list")
    if len(items) > limit:
        raise bad(f"{len(items)} boxes given, the limit is {limit} per request")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - {"box", "name"}:
            raise bad(f"[{i}] must be an object with 'box' and optional 'name' only")
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
            raise bad(f"[{i}].name must be a non-blank string of at most 200 characters")
        try:
            box = check_box(item.get("box"), f"[{i}]")
        except DataError as e:
            raise bad(str(e)) from None
        out.append({"box": box, "name": name.strip() if name else None})
    return out


def _decode(data: bytes, settings: ServeSettings) -> tuple[Any, float]:
    t0 = time.perf_counter()
    image = decode_image(data, settings.max_pixels, settings.content_types)
    return image, (time.perf_counter() - t0) * 1000.0


def _add_task_routes(app: FastAPI, deps: list[Any]) -> None:
    settings: ServeSettings = app.state.settings
    runner: InferenceRunner = app.state.runner

    @app.post("/v1/detect", response_model=S.DetectResponse, responses=ERRORS, dependencies=deps, tags=["tasks"])
    async def detect(image: ImageUpload, form: Annotated[S.DetectForm, Form()]) -> Any:
        """Detect defects named by prompts (any language the vocabulary knows) or shown by boxes ("more like this")."""
        data, prompts = await _upload_bytes(image, settings), _prompts(form.prompts, settings)
        exemplars = parse_exemplars(form.exemplars, settings.max_prompts)

        def work() -> dict[str, Any]:
            img, decode_ms = _decode(data, settings)
            dets, resolved, infer_ms = runner.detect(img, prompts, form.conf, form.iou, exemplars)
            return S.build_detect(settings.model_name, img.shape, dets, resolved, decode_ms, infer_ms, form.px_size)

        return await runner.run(work)

    @app.post("/v1/ground", response_model=S.GroundResponse, responses=ERRORS, dependencies=deps, tags=["tasks"])
    async def ground(image: ImageUpload, form: Annotated[S.GroundForm, Form()]) -> Any:
        """Find the box(es) a phrase refers to, e.g. 'crack near the left edge'."""
        data = await _upload_bytes(image, settings)

        def work() -> dict[str, Any]:
            img, decode_ms = _decode(data, settings)
            parsed, boxes, infer_ms = runner.ground(img, form.query, form.top_k)
            return S.build_ground(settings.model_name, img.shape, parsed, boxes, decode_ms, infer_ms)

        return await runner.run(work)

    @app.post("/v1/ask", response_model=S.AskResponse, responses={**ERRORS, 502: {"model": S.ErrorResponse}},
              dependencies=deps, tags=["tasks"])
    async def ask(image: ImageUpload, form: Annotated[S.AskForm, Form()]) -> Any:
        """Answer a question about the image from its detections; the answer cites box ids."""
        data, prompts = await _upload_bytes(image, settings), _prompts(form.prompts, settings)

        def work() -> tuple[Any, ...]:
            img, decode_ms = _decode(data, settings)
            dets, resolved, infer_ms = runner.detect(img, prompts)
            height, width = img.shape[:2]
            aligned = resolved if len(resolved) == len(dets.class_names) else None
            # measured once (skeleton, distance transform) for both the facts and the reported detections
            measures = None if dets.mask is None else measure_masks(dets.mask, form.px_size)
            facts = facts_from_detections(dets, width, height, aligned, px_size=form.px_size, measures=measures)
            out = S.build_detect(settings.model_name, img.shape, dets, resolved, decode_ms, infer_ms, form.px_size,
                                 measures)
            return out, facts

        async with runner.admit():
            out, facts = await runner.in_worker(work)
            # the answerer may call a remote LLM: off the loop and outside the predictor lock, not in a worker
            answer = await anyio.to_thread.run_sync(app.state.answerer.answer, form.question, facts)
        return {**out, "question": form.question, "answer": answer.text, "box_ids": answer.box_ids,
                "answerer": answer.answerer, "intents": answer.intents, "facts_used": answer.facts_used,
                "facts": facts.to_dict()}

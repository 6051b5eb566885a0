"""``rtvp serve``: the inspection service (HTTP API + web page) over a checkpoint, on 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    weights: Path = typer.Option(..., "--weights", help="Checkpoint written by `rtvp train` (best.pt / last.pt), or "
                                                        "a file from `rtvp export` (.onnx, OpenVINO .xml)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key_env: str | None = typer.Option(None, "--api-key-env",
                                           help="Environment variable holding the API key; /v1 calls then need it."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Inference size (default: the checkpoint's)."),
    conf: float = typer.Option(0.25, "--conf", help="Default score threshold (requests may override)."),
    iou: float = typer.Option(0.7, "--iou", help="Default NMS IoU threshold (requests may override)."),
    mask_thr: float = typer.Option(0.5, "--mask-thr", help="Mask probability a pixel must exceed (mask branch; as "
                                   "`rtvp predict --mask-thr`)."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest accepted image file in MiB."),
    max_pixels: int = typer.Option(50_000_000, "--max-pixels", help="Largest accepted width x height."),
    workers: int = typer.Option(2, "--workers", help="Decode/inference threads (inference itself is serialized)."),
    max_queue: int = typer.Option(64, "--max-queue", help="Requests allowed to wait before 503 busy."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="Seconds a request body may stall before 408."),
    llm_url: str | None = typer.Option(None, "--llm-url", help="OpenAI-compatible endpoint for /v1/ask "
                                                               "(default: the offline answerer)."),
    llm_model: str | None = typer.Option(None, "--llm-model", help="Model name at --llm-url."),
    llm_key_env: str = typer.Option("RTVP_LLM_API_KEY", "--llm-key-env", help="Env var holding the LLM API key."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve /v1/detect, /v1/ground, /v1/ask, /v1/model, /health, the web page at / and /openapi.json."""
    import uvicorn

    from rtvp.deploy.runners import open_predictor
    from rtvp.predict.masks import check_mask_thr
    from rtvp.service import ServeSettings, create_app
    from rtvp.service.settings import api_key_from_env
    from rtvp.tasks import LLMAnswerer, OfflineAnswerer

    settings = ServeSettings(host=host, port=port, api_key=api_key_from_env(api_key_env),
                             max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels,
                             workers=workers, max_queue=max_queue, model_name=weights.stem,
                             body_timeout_s=body_timeout)
    if not settings.loopback and settings.api_key is None:
        typer.secho(f"warning: serving on {host} without an API key; anyone who can reach this port can use it "
                    "(set --api-key-env)", fg=typer.colors.YELLOW, err=True)
    check_mask_thr(mask_thr)
    predictor = open_predictor(weights, device=device, imgsz=imgsz, conf=conf, iou=iou, mask_thr=mask_thr)
    use_llm = llm_url is not None or llm_model is not None
    answerer = LLMAnswerer.from_env(llm_url, llm_model, key_env=llm_key_env) if use_llm else OfflineAnswerer()
    app = create_app(predictor, settings, answerer)
    typer.echo(f"rtvp serve: {weights} on http://{host}:{port}/ (API key {'on' if settings.api_key else 'off'}, "
               f"answerer {getattr(answerer, 'name', 'offline')})")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def register(app: typer.Typer) -> None:
    """Attach ``rtvp serve`` to the root app."""
    app.command("serve")(serve)

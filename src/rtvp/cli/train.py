"""``rtvp train``: map the command line onto a ``TrainConfig`` and run the stages (composes the evaluator).

Precedence: ``TrainConfig`` defaults < ``--config FILE.yaml`` < explicit flags < ``--set key=value``.
Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m rtvp.cli.main train ...`` (every rank runs this).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import typer

from rtvp.errors import CheckpointError


def build_config(config: Path | None, overrides: list[str], **flags: object):
    """``TrainConfig`` from an optional YAML, the explicit flags (``None`` = not given) and ``--set`` overrides."""
    from rtvp.config import apply_overrides, load_yaml
    from rtvp.training.config import TrainConfig

    cfg = load_yaml(TrainConfig, config) if config is not None else TrainConfig()
    model = flags.pop("model", None)
    if model is not None:
        cfg = cfg.with_model_name(str(model))
    given = {k: v for k, v in flags.items() if v is not None}
    if given:
        cfg = dataclasses.replace(cfg, **given)
    return apply_overrides(cfg, overrides) if overrides else cfg


def resume_config(run: Path, device: str | None, workers: int | None):
    """The config a run was started with (``<run>/config.yaml`` or its stage-1 copy), with device/workers."""
    from rtvp.config import load_yaml
    from rtvp.training.config import TrainConfig

    for path in (run / "config.yaml", run / "expert" / "config.yaml"):
        if path.is_file():
            cfg = load_yaml(TrainConfig, path)
            given = {k: v for k, v in {"device": device, "workers": workers}.items() if v is not None}
            return dataclasses.replace(cfg, out=run, **given)
    raise CheckpointError(f"--resume: no run in {run} (config.yaml not found); check --out / --name")


def with_benchmark(cfg, images: Path | None, scene: str | None):
    """``cfg`` whose ``data`` is a benchmark: a dataset ``--data`` is built next to the run (``runs/.benchmarks``)."""
    from rtvp.cli.data_input import benchmark_for

    if cfg.data is None:
        return cfg
    bench = benchmark_for(Path(cfg.data), cfg.run_dir.parent / ".benchmarks", images, scene, max(1, cfg.workers or 1))
    return cfg if bench == Path(cfg.data) else dataclasses.replace(cfg, data=bench)


def train(
    data: Path | None = typer.Option(None, "--data", help="Benchmark folder, YOLO data.yaml, COCO JSON or dataset "
                                     "folder (built into runs/.benchmarks/ once, reused while unchanged)."),
    images: Path | None = typer.Option(None, "--images", help="Image folder of a COCO JSON --data (if not beside)."),
    scene: str | None = typer.Option(None, "--scene", help="Scene words of a dataset --data (default: its name)."),
    protocol: str | None = typer.Option(None, "--protocol", help="closed | open"),
    model: str | None = typer.Option(None, "--model", help="rtvpnet-{n,s,l,tiny} or expert-{n,s,l,tiny}. For a "
                                     "closed set (--protocol closed) use expert-n: at equal epochs RTVPNet's stage 2 "
                                     "lost 1.8 (NEU-DET) and 3.7 (DeepPCB) AP, 2 seeds each, for 1.4-1.5x the "
                                     "training time."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (stage 2 of a two-stage run)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Image size (multiple of 32)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default runs/<name>)."),
    name: str | None = typer.Option(None, "--name", help="Run name (runs/<name>) when --out is not given."),
    batch: int | None = typer.Option(None, "--batch", help="Global batch size."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    workers: int | None = typer.Option(None, "--workers", help="Dataloader workers per process (default: 0 on a CPU "
                                       "with <= 2 cores, where workers slow training; else half the CPUs, <= 4)."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="Mixed precision: default auto (bf16 on CPUs "
                                    "with AMX/AVX-512 BF16, fp16 on CUDA, else fp32); --amp forces it, --no-amp fp32."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out/--name from weights/last.pt."),
    config: Path | None = typer.Option(None, "--config", help="TrainConfig YAML (e.g. a run's config.yaml)."),
    overrides: list[str] = typer.Option([], "--set", help="key=value override, e.g. --set model.edp=false."),
) -> None:
    """Train RTVPNet (expert pre-training, then the full model) or the closed-set expert alone.

    Closed set (only the classes you train on): --model expert-n is the cheaper choice and, on the real datasets
    measured (NEU-DET, DeepPCB, equal epochs, 2 seeds), the more accurate one. RTVPNet is for prompting by text or
    example (open vocabulary).

    Example: rtvp train --data my_parts/data.yaml --model expert-n --epochs 50 --imgsz 640
    """
    from rtvp.evaluation.validation import make_eval_factory
    from rtvp.training.distributed import cleanup_distributed, get_dist_info
    from rtvp.training.loggers import console_logging
    from rtvp.training.stages import train as train_stages

    console_logging()
    if resume:
        from rtvp.training.config import TrainConfig

        run = out if out is not None else Path("runs") / (name or TrainConfig().name)
        cfg = resume_config(run, device, workers)
        ignored = [f for f, v in {"--data": data, "--protocol": protocol, "--model": model, "--epochs": epochs,
                                  "--imgsz": imgsz, "--batch": batch, "--config": config,
                                  "--amp/--no-amp": amp}.items() if v is not None]
        if ignored or overrides:
            logging.getLogger("rtvp").warning("--resume continues with the run's own config; ignoring %s",
                                              ", ".join(ignored + ["--set"] * bool(overrides)))
    else:
        cfg = build_config(config, list(overrides), model=model, data=data, protocol=protocol, epochs=epochs,
                           imgsz=imgsz, out=out, name=name, batch=batch, device=device, workers=workers,
                           amp=amp)
        cfg = with_benchmark(cfg, images, scene)
    try:
        result = train_stages(cfg, resume=resume, make_eval=make_eval_factory(cfg))
        is_main = get_dist_info().is_main
    finally:
        cleanup_distributed()
    if is_main:
        for stage, r in result.items():
            scalars = {k: v for k, v in r["metrics"].items() if k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
            shown = "  ".join(f"{k} {v:.4f}" for k, v in scalars.items() if isinstance(v, float))
            typer.echo(f"{stage}: best weights {r['best']}" + (f"  (last evaluation: {shown})" if shown else ""))


def register(app: typer.Typer) -> None:
    """Attach ``rtvp train`` to the root app."""
    app.command("train")(train)

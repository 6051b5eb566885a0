"""``rtvp info``: parameters per component (trainable vs frozen) and GFLOPs of a model at a given input size."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import typer

DEFAULT_TEXT_DIM = 384  # all-MiniLM-L6-v2, used when the text encoder cannot be loaded
FLOP_NOTE = "torch.utils.flop_counter: 1 multiply-add = 2 FLOPs; conv/matmul/attention only; text encoder excluded"


def _parse_model(name: str) -> tuple[str, str, bool]:
    """``rtvpnet-s`` -> ("rtvpnet", "s", False); ``expert-n-seg`` -> ("expert", "n", True): with the mask branch.

    Kinds: rtvpnet (full), baseline (text-only, no SAM), expert (closed-set).
    """
    from rtvp.errors import ConfigError
    from rtvp.models.scales import SCALES

    kind, _, rest = name.partition("-")
    scale, _, suffix = rest.partition("-")
    if kind not in ("rtvpnet", "baseline", "expert") or scale not in SCALES or suffix not in ("", "seg"):
        raise ConfigError(f"--model {name!r}: use rtvpnet-<scale>, baseline-<scale> or expert-<scale> with a scale in "
                          f"{SCALES.names()}, optionally followed by -seg (the mask branch)")  # fmt: skip
    return kind, scale, suffix == "seg"


def _text_encoder(name: str) -> tuple[int, int | None]:
    """(dim, parameter count or None when unavailable) of a text encoder; ``none`` skips loading."""
    if name == "none":
        return DEFAULT_TEXT_DIM, None
    try:
        from rtvp.models.text import build_text_encoder

        enc = build_text_encoder(name)
        count = enc.num_parameters() if hasattr(enc, "num_parameters") else None
        return int(enc.dim), count
    except Exception as e:  # noqa: BLE001 - optional component; report n/a rather than fail
        warnings.warn(f"text encoder '{name}' unavailable ({e}); its parameters are reported as n/a", stacklevel=2)
        return DEFAULT_TEXT_DIM, None


def model_info(
    model: str = "rtvpnet-n",
    imgsz: int = 640,
    sam_imgsz: int | None = None,
    prompts: int = 80,
    text_encoder: str = "minilm",
    sam_weights: Path | None = None,
    in_channels: int = 3,
) -> dict[str, Any]:
    """Parameters and GFLOPs of a named model (the body of ``rtvp info``; returns JSON-able data)."""
    from rtvp.models.config import ModelConfig
    from rtvp.models.cost import flop_report, param_report
    from rtvp.models.detector import build_model
    from rtvp.models.expert import ExpertDetector

    kind, scale, masks = _parse_model(model)
    dim, text_params = _text_encoder(text_encoder)
    cfg = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "expert":
            net = ExpertDetector(scale, in_channels, nc=prompts, masks=masks)
        else:
            off = kind == "baseline"
            cfg = ModelConfig(
                scale=scale, in_channels=in_channels, sam=not off, edp=not off, rvp=not off, t2v=not off,
                v2t=not off, sam_imgsz=sam_imgsz, sam_weights=sam_weights, sam_freeze=True, masks=masks,
            )  # fmt: skip
            net = build_model(cfg, dim) if sam_weights is not None or off else _build_unloaded(cfg, dim)
    params = param_report(net)
    if kind == "expert":
        params = {k: v for k, v in params.items() if k in ("expert", "head", "mask", "total")}
    gflops = flop_report(net, imgsz, num_prompts=prompts)
    if kind == "expert":
        gflops = {k: v for k, v in gflops.items() if k in ("expert", "head", "mask", "total")}
    total = params["total"]["total"] + (text_params or 0)
    return {
        "model": model,
        "imgsz": imgsz,
        "sam_imgsz": list(net.sam_size(imgsz, imgsz)) if cfg is not None and cfg.sam else None,
        "num_prompts": prompts,
        "params": params,
        "text_encoder": {"name": text_encoder, "dim": dim, "params": text_params},
        "total_params_with_text_encoder": total if text_params is not None else None,
        "gflops": gflops,
        "flop_convention": FLOP_NOTE,
    }


def _build_unloaded(cfg: Any, dim: int) -> Any:
    """RTVPNet with a frozen, randomly initialised SAM (counts as with the official weights, nothing is loaded)."""
    from rtvp.models.detector import build_model
    from rtvp.models.sam import MobileSAMEncoder

    return build_model(cfg, dim, sam_encoder=MobileSAMEncoder())


def _fmt(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:.2f} M"


def _print(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{info['model']} @ {info['imgsz']} px, K = {info['num_prompts']} prompts")
    for col in ("component", "params", "trainable", "frozen", "GFLOPs"):
        table.add_column(col, justify="left" if col == "component" else "right")
    for comp, p in info["params"].items():
        g = info["gflops"].get(comp)
        table.add_row(comp, _fmt(p["total"]), _fmt(p["trainable"]), _fmt(p["frozen"]), "" if g is None else f"{g:.2f}")
    te = info["text_encoder"]
    table.add_row(f"text encoder ({te['name']}, frozen)", _fmt(te["params"]), "", "", "cached")
    table.add_row("total incl. text encoder", _fmt(info["total_params_with_text_encoder"]), "", "", "")
    console = Console()
    console.print(table)
    if info["sam_imgsz"]:
        console.print(f"SAM input: {info['sam_imgsz'][0]}x{info['sam_imgsz'][1]} px")
    console.print(f"FLOPs: {info['flop_convention']}")


def register(app: typer.Typer) -> None:
    """Add ``rtvp info`` to the root CLI."""

    @app.command("info")
    def info_cmd(
        model: str = typer.Option("rtvpnet-n", "--model", help="rtvpnet-<n|s|l|tiny>, baseline-<...>, expert-<...>; "
                                   "a -seg suffix adds the mask branch (expert-n-seg)"),
        imgsz: int = typer.Option(640, "--imgsz", help="Input side in pixels (multiple of 32)."),
        sam_imgsz: int | None = typer.Option(None, "--sam-imgsz", help="SAM input side (default: scale's rule)."),
        prompts: int = typer.Option(80, "--prompts", help="Vocabulary size K used for the FLOP count."),
        text_encoder: str = typer.Option("minilm", "--text-encoder", help="Text encoder to count ('none' skips)."),
        sam_weights: Path | None = typer.Option(None, "--sam-weights", help="Official mobile_sam.pt (optional)."),
        in_channels: int = typer.Option(3, "--in-channels", help="Image channels."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Parameters per component (trainable vs frozen) and GFLOPs at the given size."""
        if imgsz % 32:
            raise typer.BadParameter(f"--imgsz {imgsz} must be a multiple of 32")
        info = model_info(model, imgsz, sam_imgsz, prompts, text_encoder, sam_weights, in_channels)
        if as_json:
            typer.echo(json.dumps(info, indent=2))
        else:
            _print(info)

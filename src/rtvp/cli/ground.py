"""``rtvp ground``: phrase -> best box(es) in one image; ``rtvp ground-eval``: grounding Acc@0.5 on a benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # pragma: no cover
    from rtvp.structures import Detections


def save_annotated(image: Path, dets: Detections, highlight: set[int] | None, out: Path,
                   names: list[str] | None = None) -> None:
    """Draw ``dets`` on the image and write it atomically.

    Args:
        image: the image file.
        dets: detections in its pixels.
        highlight: detection indices drawn emphasised and labelled ``#index`` (the ids answers cite).
        out: output file (.png, .jpg, ...).
        names: ASCII display name per class (e.g. canonical terms for Chinese prompts).
    """
    import cv2

    from rtvp.errors import ConfigError
    from rtvp.fileio import atomic_write_bytes
    from rtvp.imaging import read_image
    from rtvp.predict.draw import draw_detections

    canvas = draw_detections(read_image(image, 3), dets, highlight, names=names)
    ok, buf = cv2.imencode(out.suffix or ".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ConfigError(f"{out}: cannot encode an image with suffix '{out.suffix}'; use .png or .jpg")
    atomic_write_bytes(out, buf.tobytes())


def ground_cmd(
    image: Path = typer.Argument(..., help="Image file."),
    query: str = typer.Argument(..., help='Phrase, e.g. "crack near the left edge" or "the largest hole".'),
    weights: Path = typer.Option(..., "--weights", help="RTVPNet checkpoint."),
    top_k: int = typer.Option(1, "--top-k", help="Number of boxes to return."),
    conf: float = typer.Option(0.05, "--conf", help="Detector confidence floor for candidates (low: re-ranked)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Inference size (default: the checkpoint's)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Write the image with the grounded box(es) drawn."),
) -> None:
    """Ground a phrase: the defect words are the detector's vocabulary, location/size words re-rank the boxes."""
    from rtvp.predict.predictor import Predictor
    from rtvp.structures import Detections
    from rtvp.tasks.grounding import ground, parse_query

    q = parse_query(query)
    predictor = Predictor(weights, device=device, imgsz=imgsz, conf=conf)
    boxes = ground(predictor, image, query, top_k)
    if out is not None:
        dets = Detections([b.box for b in boxes], [b.score for b in boxes], [0] * len(boxes), [q.phrase or "defect"])
        save_annotated(image, dets, set(range(len(boxes))), out, names=[q.defect or q.phrase or "defect"])
    if as_json:
        typer.echo(json.dumps({"query": query, "phrase": q.phrase, "defect": q.defect,
                               "constraints": q.constraints.describe(), "boxes": [b.to_dict() for b in boxes]},
                              indent=2, ensure_ascii=False))
        return
    phrase = f"'{q.phrase}'" + (f" -> {q.defect}" if q.defect and q.defect != q.phrase else "")
    typer.echo(f"defect phrase {phrase if q.phrase else '(none: checkpoint vocabulary)'}; "
               f"constraints: {q.constraints.describe() or 'none'}")
    if not boxes:
        typer.echo(f"no box found above --conf {conf}")
    for rank_, b in enumerate(boxes, 1):
        typer.echo(f"{rank_}. {b.label}  score {b.score:.3g} = conf {b.confidence:.3g} x prior {b.prior:.3g}  "
                   f"box [{', '.join(f'{v:.0f}' for v in b.box)}]")
    if out is not None:
        typer.echo(f"wrote {out}")


def ground_eval_cmd(
    data: Path = typer.Option(..., "--data", help="Benchmark folder (built with `rtvp data build`)."),
    weights: Path = typer.Option(..., "--weights", help="RTVPNet checkpoint."),
    split: str = typer.Option("val", "--split", help="val | train | a file stem such as closed_val."),
    protocol: str = typer.Option("closed", "--protocol", help="closed | open | generalized"),
    conf: float = typer.Option(0.01, "--conf", help="Detector confidence floor (low, so every query has a box)."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Inference size (default: the checkpoint's)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Grounding Acc@0.5: queries are the class texts present in each image (+ location words)."""
    from rtvp.predict.predictor import Predictor
    from rtvp.tasks.grounding import evaluate_grounding

    metrics = evaluate_grounding(Predictor(weights, device=device, imgsz=imgsz, conf=conf), data, split, protocol)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, ensure_ascii=False))
        return

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    loc = metrics["with_location"]
    typer.echo(f"{metrics['split']} ({protocol}): Acc@0.5 {fmt(metrics['acc@0.5'])} over {metrics['queries']} "
               f"queries; with location words {fmt(loc['acc@0.5'])} over {loc['queries']}")
    for name, m in metrics["per_type"].items():
        typer.echo(f"  {name:<40} {fmt(m['acc@0.5'])}  ({m['queries']})")


def register(app: typer.Typer) -> None:
    """Attach ``rtvp ground`` and ``rtvp ground-eval`` to the root app."""
    app.command("ground")(ground_cmd)
    app.command("ground-eval")(ground_eval_cmd)

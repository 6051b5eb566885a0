"""``rtvp ask``: a question about one image, answered from its detections (offline rules or an LLM endpoint)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # pragma: no cover
    from rtvp.tasks.facts import ImageFacts
    from rtvp.tasks.vqa import Answer


def ask_cmd(
    image: Path = typer.Argument(..., help="Image file."),
    question: str = typer.Argument(..., help='Question, e.g. "what defects are there and why?" or "有裂纹吗？".'),
    weights: Path = typer.Option(..., "--weights", help="RTVPNet checkpoint."),
    prompts: str | None = typer.Option(None, "--prompts", help="Comma-separated vocabulary (default: checkpoint's)."),
    prompts_file: Path | None = typer.Option(None, "--prompts-file", help="Vocabulary file, one prompt per line."),
    llm_url: str | None = typer.Option(None, "--llm-url", help="OpenAI-compatible endpoint (env RTVP_LLM_URL)."),
    llm_model: str | None = typer.Option(None, "--llm-model", help="Model name (env RTVP_LLM_MODEL)."),
    llm_key_env: str = typer.Option("RTVP_LLM_API_KEY", "--llm-key-env", help="Variable holding the API key."),
    timeout: float = typer.Option(60.0, "--timeout", help="LLM request timeout in seconds."),
    retries: int = typer.Option(2, "--retries", help="LLM retries on timeouts / 5xx."),
    offline: bool = typer.Option(False, "--offline", help="Use the offline answerer even if RTVP_LLM_URL is set."),
    conf: float = typer.Option(0.25, "--conf", help="Detector confidence threshold."),
    imgsz: int | None = typer.Option(None, "--imgsz", help="Inference size (default: the checkpoint's)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    as_json: bool = typer.Option(False, "--json", help="Print answer and facts as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Write the image with the cited boxes highlighted."),
    px_size: float | None = typer.Option(None, "--px-size", metavar="MM", help="Pixel size in millimetres per pixel "
                                         "(> 0): mask sizes in the facts and answers are given in mm."),
) -> None:
    """Answer a question about an image; every answer cites the boxes it rests on."""
    from rtvp.cli.ground import save_annotated
    from rtvp.masks import check_px_size
    from rtvp.predict.predictor import Predictor
    from rtvp.tasks.facts import facts_from_detections
    from rtvp.tasks.grounding import image_size
    from rtvp.tasks.llm import ENV_URL, LLMAnswerer
    from rtvp.tasks.vqa import OfflineAnswerer
    from rtvp.vocabulary import parse_prompts

    check_px_size(px_size, "--px-size")
    prompt_list = parse_prompts(prompts, prompts_file) or None
    use_llm = not offline and bool(llm_url or os.environ.get(ENV_URL))
    answerer = (LLMAnswerer.from_env(llm_url, llm_model, key_env=llm_key_env, timeout=timeout, retries=retries)
                if use_llm else OfflineAnswerer())
    predictor = Predictor(weights, device=device, imgsz=imgsz, conf=conf)
    resolved = predictor.set_prompts(prompt_list)
    results = predictor.predict([image], prompts=prompt_list)
    if not results:
        from rtvp.errors import DataError

        raise DataError(f"{image}: no detections returned (is it a readable image?)")
    dets = results[0]
    width, height = image_size(image)
    facts = facts_from_detections(dets, width, height, resolved if len(resolved) == len(dets.class_names) else None,
                                  px_size=px_size)
    answer = answerer.answer(question, facts)
    if out is not None:
        save_annotated(image, dets, set(answer.box_ids), out, names=[p.defect for p in facts.vocabulary])
    if as_json:
        typer.echo(json.dumps({"question": question, "answer": answer.to_dict(), "facts": facts.to_dict()},
                              indent=2, ensure_ascii=False))
        return
    mapped = [f"{r.prompt} -> {r.canonical}" for r in resolved if r.canonical and r.canonical != r.prompt]
    if mapped:
        typer.echo(f"vocabulary: {', '.join(mapped)}")
    _print_answer(answer, facts)
    if out is not None:
        typer.echo(f"wrote {out}")


def _print_answer(answer: Answer, facts: ImageFacts) -> None:
    """The answer text, who answered, and one line per cited box."""
    typer.echo(answer.text)
    typer.echo(f"({answer.answerer}; {len(facts.boxes)} detections)")
    for box_id in answer.box_ids:
        b = facts.box(box_id)
        typer.echo(f"  [#{b.id}] {b.label}  conf {b.confidence:.2f}  {b.where()}  {b.size} {b.morphology}  "
                   f"box [{', '.join(f'{v:.0f}' for v in b.box)}]" + (f"  mask {b.mask_sizes()}" if b.mask else ""))


def register(app: typer.Typer) -> None:
    """Attach ``rtvp ask`` to the root app."""
    app.command("ask")(ask_cmd)

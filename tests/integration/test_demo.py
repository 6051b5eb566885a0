"""``rtvp demo`` end to end at toy size: synth -> benchmark -> train (closed + open) -> eval -> drawn images."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from rtvp.cli.main import app

KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@pytest.mark.parametrize("closed_model", [None, "expert-tiny"])
def test_demo_writes_metrics_and_drawn_detections(tmp_path, closed_model):
    """Default: rtvpnet (two stages) on both protocols; ``--closed-model expert-tiny``: the expert alone (closed)."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--images", "24", "--model", "rtvpnet-tiny", "--imgsz", "64",
            "--epochs", "1", "--expert-epochs", "1", "--open-epochs", "1", "--open-expert-epochs", "1",
            "--closed-epochs", "1", "--batch", "8", "--device", "cpu", "--set", "model.text_encoder=hash"]
    # the default renders at --imgsz (64 px); --size sets the side explicitly
    args += ["--closed-model", closed_model, "--size", "96"] if closed_model else []
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    metrics = json.loads((out / "metrics.json").read_text())
    for protocol in ("closed", "open"):
        for k in KEYS:
            v = metrics[protocol][k]
            assert v is None or 0.0 <= v <= 1.0, (protocol, k, v)
    assert {"AP_seen", "AP_unseen", "HM"} <= set(metrics["open"])
    # the OpenMP wait policy this process runs under (libgomp's own when neither the user nor rtvp set one)
    assert metrics["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "libgomp default")  # rtvp.omp_wait_policy()
    assert {"mask_AP", "mask_AP50"} <= set(metrics["closed"])  # the mask branch is on by default (--no-masks)
    for k in ("mask_AP", "mask_AP50"):
        assert metrics["closed"][k] is None or 0.0 <= metrics["closed"][k] <= 1.0
    assert (out / "bench" / "annotations" / "closed_val.json").is_file()
    val = json.loads((out / "bench" / "annotations" / "closed_val.json").read_text())
    assert {(im["width"], im["height"]) for im in val["images"]} == ({(96, 96)} if closed_model else {(64, 64)})
    drawn = list((out / "detections").glob("*.png"))
    assert len(drawn) == 4 and all(p.stat().st_size > 0 for p in drawn)
    best = out / "runs" / "closed" / "weights" / "best.pt"
    assert best.is_file()
    from rtvp.checkpoint import load_checkpoint

    ckpt = load_checkpoint(best)
    assert ckpt["model_config"]["masks"] is True and any(k.startswith("seg.") for k in ckpt["model"])
    closed = closed_model or "rtvpnet-tiny"
    assert ckpt["arch"] == closed.split("-")[0] and metrics["models"] == {"closed": closed, "open": "rtvpnet-tiny"}
    assert (out / "runs" / "closed" / "expert").is_dir() is (closed_model is None)  # stage 1 of the two-stage run
    assert load_checkpoint(out / "runs" / "open" / "weights" / "best.pt")["arch"] == "rtvpnet"

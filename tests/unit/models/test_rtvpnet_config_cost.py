"""ModelConfig validation and sizing rules; parameter/FLOP reports; ``rtvp info --json``."""

from __future__ import annotations

import json

import pytest
from rtvp_helpers import build, single_thread  # noqa: F401 (autouse fixture)
from typer.testing import CliRunner

from rtvp.config import from_dict
from rtvp.errors import ConfigError
from rtvp.models import SCALES, ModelConfig
from rtvp.models.cost import COMPONENTS, component_of, flop_report, param_report
from rtvp.models.detector import sam_input_size


def test_config_defaults_and_resolution():
    cfg = ModelConfig()
    assert (cfg.scale, cfg.sam, cfg.edp, cfg.rvp, cfg.t2v, cfg.v2t, cfg.activation) == ("n", True, True, True, True,
                                                                                        True, "energy")  # fmt: skip
    assert cfg.dim == 256 and ModelConfig(scale="l").dim == 512 and ModelConfig(embed_dim=64).dim == 64
    assert cfg.freeze_sam is False and ModelConfig(sam_weights="x.pt").freeze_sam is True  # type: ignore[arg-type]
    assert ModelConfig(sam_weights="x.pt", sam_freeze=False).freeze_sam is False  # type: ignore[arg-type]
    assert sam_input_size(640, 640, "n", None) == (320, 320)  # n: half size
    assert sam_input_size(640, 480, "s", None) == (640, 480)
    assert sam_input_size(640, 480, "s", 320) == (320, 256)  # 240 rounds to 256
    assert sam_input_size(64, 64, "n", 100) == (96, 96)
    assert sam_input_size(32, 32, "n", None) == (32, 32)  # never below 32
    assert set(SCALES.names()) == {"tiny", "n", "s", "l"}


@pytest.mark.parametrize(
    "data,match",
    [
        ({"scale": "xl"}, "unknown scale"),
        ({"sam": False}, "edp needs the SAM branch"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"activation": "relu"}, "activation"),
        ({"embed_dim": 100}, "divisible"),
        ({"patch_size": 0}, "patch_size"),
        ({"in_channels": 0}, "in_channels"),
        ({"sam_imgsz": 16}, "sam_imgsz"),
        ({"samm": True}, "unknown key"),
    ],
)
def test_config_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(ModelConfig, data, "model")


def test_config_round_trips_from_dict():
    cfg = from_dict(ModelConfig, {"scale": "s", "sam_weights": "w/mobile_sam.pt", "activation": "cbam"})
    assert str(cfg.sam_weights) == "w/mobile_sam.pt" and cfg.activation == "cbam"


def test_component_names():
    assert component_of("expert.backbone.stem.0.conv.weight") == "expert"
    assert component_of("expert.neck.top4.attn.bias") == "interaction"
    assert component_of("expert.neck.top4.attn_proj.weight") == "interaction"
    assert component_of("inject.0.weight") == "prompt"
    assert component_of("text_proj.weight") == "head"
    assert component_of("v2t.gamma") == "interaction"
    assert component_of("seg.proto.0.conv.weight") == "mask"


def test_param_and_flop_reports_add_up():
    model = build(sam_freeze=True, masks=True)
    params = param_report(model)
    assert sum(params[c]["total"] for c in COMPONENTS) == params["total"]["total"]
    assert params["total"]["total"] == sum(p.numel() for p in model.parameters())
    assert params["sam"]["frozen"] == params["sam"]["total"] > 0 and params["sam"]["trainable"] == 0
    assert params["total"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = flop_report(model, 64, num_prompts=4)
    assert set(COMPONENTS) <= set(flops) and "other" not in flops
    assert all(flops[c] > 0 for c in COMPONENTS)
    assert abs(sum(flops[c] for c in COMPONENTS) - flops["total"]) < 1e-9
    bigger = flop_report(model, 128, num_prompts=4)["total"]
    assert 3.5 < bigger / flops["total"] < 4.5  # conv cost scales with pixels
    assert model.training  # the report works on a copy


def test_rtvp_info_json():
    from rtvp.cli.main import app

    result = CliRunner().invoke(
        app, ["info", "--model", "rtvpnet-tiny", "--imgsz", "64", "--text-encoder", "hash", "--prompts", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert set(info) >= {"model", "imgsz", "params", "gflops", "text_encoder", "flop_convention", "sam_imgsz"}
    assert set(info["params"]) == {*COMPONENTS, "total"}
    assert set(info["params"]["sam"]) == {"total", "trainable", "frozen"}
    assert info["params"]["sam"]["frozen"] > 5_000_000  # MobileSAM TinyViT-5M, counted frozen
    assert info["text_encoder"] == {"name": "hash", "dim": 64, "params": 0}
    assert info["gflops"]["total"] > 0 and info["sam_imgsz"] == [64, 64]
    table = CliRunner().invoke(app, ["info", "--model", "baseline-tiny", "--imgsz", "64", "--text-encoder", "none"])
    assert table.exit_code == 0 and "total" in table.output
    bad = CliRunner().invoke(app, ["info", "--model", "yolo-s", "--text-encoder", "none"])
    assert bad.exit_code != 0

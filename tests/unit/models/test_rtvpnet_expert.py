"""Expert detector shapes and sizes (matches YOLOv8), and loading stage-1 weights into RTVPNet."""

from __future__ import annotations

import pytest
import torch
from rtvp_helpers import build, images, single_thread, text  # noqa: F401 (autouse fixture)

from rtvp.errors import CheckpointError
from rtvp.models import ExpertDetector
from rtvp.models.cost import flop_report, param_report


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_expert_detector_forward_shapes(channels):
    det = ExpertDetector("tiny", in_channels=channels, nc=5)
    out = det(images(2, c=channels, h=64, w=96))
    a = 8 * 12 + 4 * 6 + 2 * 3
    assert out.box_dist.shape == (2, a, 64) and out.logits.shape == (2, a, 5)
    assert out.embeddings is None and out.text is None
    assert out.feat_shapes == [(8, 12), (4, 6), (2, 3)]
    feats = det.expert(images(1, c=channels))
    assert [f.shape[1] for f in feats] == [16, 32, 64]


def test_expert_matches_yolov8_sizes():
    # YOLOv8 model cards: n 3.2 M / 8.7 GFLOPs, s 11.2 M / 28.6 GFLOPs at 640 px (80 classes; +16 frozen DFL weights)
    counts = {s: param_report(ExpertDetector(s, 3, 80))["total"]["total"] for s in ("n", "s")}
    assert counts == {"n": 3_157_184, "s": 11_166_544}
    assert abs(flop_report(ExpertDetector("s", 3, 80), 640)["total"] - 28.6) < 0.05
    assert abs(flop_report(ExpertDetector("n", 3, 80), 640)["total"] - 8.7) < 0.05


def test_closed_set_prior_bias():
    det = ExpertDetector("tiny", 3, nc=5).eval()
    with torch.no_grad():
        logits = det(images(1)).logits
    assert logits.sigmoid().mean() < 0.05


def test_load_expert_copies_weights_and_tcsp_starts_as_expert():
    torch.manual_seed(3)
    det = ExpertDetector("tiny", 3, nc=5)
    with torch.no_grad():
        for p in det.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model = build(seed=0)
    with torch.no_grad():
        for name, p in model.expert.named_parameters():
            if name.endswith("attn_proj.weight"):
                p.zero_()
    counts = model.load_expert(det.state_dict())
    assert counts["expert"] == len(det.expert.state_dict()) and counts["box"] == len(det.head.box.state_dict())
    for k, v in det.expert.state_dict().items():
        torch.testing.assert_close(model.expert.state_dict()[k], v)
    for k, v in det.head.box.state_dict().items():
        torch.testing.assert_close(model.head.box.state_dict()[k], v)
    det.eval(), model.eval()
    x = images(1)
    t = torch.nn.functional.normalize(model.text_proj(text(3)), dim=-1).unsqueeze(0)
    with torch.no_grad():
        for a, b in zip(model.expert(x, t), det.expert(x), strict=True):
            torch.testing.assert_close(a, b)  # zero-initialised T->V fusion: the T-CSP neck equals the expert's
    bare = build(seed=1, t2v=False)
    assert bare.load_expert(det.expert.state_dict())["box"] == 0  # a bare Expert state dict works too
    assert bare.load_expert({"model": det.state_dict()})["expert"] > 0


def test_load_expert_rejects_wrong_scale_or_channels():
    model = build(seed=0)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        model.load_expert(ExpertDetector("tiny", in_channels=1, nc=5).state_dict())
    with pytest.raises(CheckpointError, match="missing"):
        model.load_expert({"expert.backbone.stem.0.conv.weight": torch.zeros(8, 3, 3, 3)})
    with pytest.raises(CheckpointError, match="unexpected"):
        sd = ExpertDetector("tiny", 3, nc=5).state_dict()
        sd["expert.extra.weight"] = torch.zeros(1)
        model.load_expert(sd)

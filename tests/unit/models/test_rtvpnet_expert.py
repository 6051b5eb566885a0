"""Expert detector shapes and sizes (matches YOLOv8), and loading stage-1 weights into RTVPNet."""

from __future__ import annotations

import pytest
import torch
from rtvp_helpers import build, images, single_thread, text  # noqa: F401 (autouse fixture)

from rtvp.errors import CheckpointError
from rtvp.models import ExpertDetector
from rtvp.models.cost import flop_report, param_report
from rtvp.models.transfer import load_expert


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
    counts = load_expert(model, det.state_dict())
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
    assert load_expert(bare, det.expert.state_dict())["box"] == 0  # a bare Expert state dict works too
    assert load_expert(bare, {"model": det.state_dict()})["expert"] > 0


def test_load_expert_rejects_wrong_scale_or_channels():
    model = build(seed=0)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_expert(model, ExpertDetector("tiny", in_channels=1, nc=5).state_dict())
    with pytest.raises(CheckpointError, match="missing"):
        load_expert(model, {"expert.backbone.stem.0.conv.weight": torch.zeros(8, 3, 3, 3)})
    with pytest.raises(CheckpointError, match="unexpected"):
        sd = ExpertDetector("tiny", 3, nc=5).state_dict()
        sd["expert.extra.weight"] = torch.zeros(1)
        load_expert(model, sd)


def _expert_with_stats(nc: int, seed: int) -> ExpertDetector:
    """A tiny expert with non-trivial weights and BatchNorm statistics (as after stage 1), in eval mode."""
    torch.manual_seed(seed)
    det = ExpertDetector("tiny", 3, nc=nc)
    with torch.no_grad():
        for m in det.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
    return det.eval()


@pytest.mark.parametrize("nc", [5, 20])
def test_load_expert_seeds_the_embedding_branch_with_the_expert_classifier(nc):
    """With class_text, <T_k, e_raw> equals the expert's logit z_k at every anchor: logit = alpha z_k / |T^+ z| + beta.

    tiny: the expert's class branch is max(16, nc) wide (16 or 20 channels) inside the 80-wide embedding branch;
    nc <= D = 32 (and nc <= Dt, the projected prompts' rank) makes T^+ exact.
    """
    from rtvp.models import ModelConfig, build_model

    det = _expert_with_stats(nc, seed=4)
    torch.manual_seed(0)
    model = build_model(ModelConfig(scale="tiny", sam=False, edp=False, rvp=False, text_encoder="hash"), 24).eval()
    class_text = text(nc, dim=24, seed=5)
    assert load_expert(model, det.state_dict(), class_text=class_text)["cls"] == 3
    x = images(2, seed=6)
    with torch.no_grad():
        z = det(x).logits  # (B, A, nc)
        out = model(x, class_text)
        prompts = torch.nn.functional.normalize(model.text_proj(class_text), dim=-1)
    level = torch.cat([torch.full((h * w,), i) for i, (h, w) in enumerate(out.feat_shapes)])
    alpha, beta = model.head.log_alpha.exp()[level], model.head.beta[level]
    cos = (out.logits - beta[None, :, None]) / alpha[None, :, None]
    norm = (z @ torch.linalg.pinv(prompts).T).norm(dim=-1, keepdim=True)  # |T^+ z| per anchor
    torch.testing.assert_close(cos * norm, z, rtol=1e-3, atol=1e-3)
    assert torch.equal(out.logits.argmax(-1), z.argmax(-1))


def test_load_expert_class_text_errors_and_fallbacks():
    det = _expert_with_stats(5, seed=4)
    model = build(seed=0)
    with pytest.raises(ValueError, match=r"class_text must be \(5, "):
        load_expert(model, det.state_dict(), class_text=text(4))
    before = model.head.embed.state_dict()
    assert load_expert(model, det.expert.state_dict(), class_text=text(5))["cls"] == 0  # bare expert: no class branch
    assert load_expert(model, det.state_dict())["cls"] == 0  # no class_text: the embedding branch is untouched
    for k, v in model.head.embed.state_dict().items():
        assert torch.equal(v, before[k]), k

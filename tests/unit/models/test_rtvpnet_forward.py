"""RTVPNet forward/backward, shapes, text formats, masks, frozen vs trainable parameters, parameter groups."""

from __future__ import annotations

import warnings

import pytest
import torch
from rtvp_helpers import TEXT_DIM, StandInSAM, build, images, single_thread, text, total_loss  # noqa: F401 (autouse fixture)

from rtvp.models import ModelConfig, build_model
from rtvp.models.detector import sam_view


def _anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_tiny_forward_backward_shapes(k, size):
    model = build()
    h, w = size
    out = model(images(2, h=h, w=w), text(k))
    a = _anchors(h, w)
    assert out.box_dist.shape == (2, a, 64)
    assert out.logits.shape == (2, a, k)
    assert out.embeddings.shape == (2, a, 32)
    assert out.text.shape == (2, k, 32)
    assert out.aux_box_dist.shape == (2, a, 64)
    assert out.anchors.shape == (a, 2) and out.strides.shape == (a,)
    assert out.feat_shapes == [(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    assert len(out.dp_pairs) == 3
    for (pred, target), (fh, fw), c in zip(out.dp_pairs, out.feat_shapes, (16, 32, 64), strict=True):
        assert pred.shape == target.shape == (2, c, fh, fw)
        assert pred.requires_grad and not target.requires_grad
    assert [m.shape for m in out.maps["uncertainty"]] == [(2, 1, fh, fw) for fh, fw in out.feat_shapes]
    torch.testing.assert_close(out.embeddings.norm(dim=-1), torch.ones(2, a))
    torch.testing.assert_close(out.text.norm(dim=-1), torch.ones(2, k))
    total_loss(out).backward()
    assert model.text_proj.weight.grad is not None


def test_text_2d_equals_3d_broadcast():
    model = build().eval()
    x, t = images(2), text(4)
    with torch.no_grad():
        a = model(x, t)
        b = model(x, t.unsqueeze(0).expand(2, -1, -1).clone())
    torch.testing.assert_close(a.logits, b.logits)
    with torch.no_grad():
        per_image = model(x, text(4, b=2))
    assert per_image.logits.shape == a.logits.shape
    assert not torch.allclose(per_image.logits, a.logits)


def test_padded_prompts_get_large_negative_logits_and_do_not_change_real_ones():
    model = build(rvp=False).eval()  # T->V max and V->T must ignore/keep real prompts consistently
    x, t = images(1), text(3)
    with torch.no_grad():
        full = model(x, t[:2])
        padded = model(x, t, torch.tensor([True, True, False]))
    assert (padded.logits[..., 2] <= -1e3).all()
    torch.testing.assert_close(padded.logits[..., :2], full.logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="text_mask"):
        model(x, t, torch.tensor([True, False]))


@pytest.mark.parametrize("scale", ["n", "s", "l"])
def test_scales_forward_at_64(scale):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(ModelConfig(scale=scale), TEXT_DIM, sam_encoder=StandInSAM()).eval()
    with torch.no_grad():
        out = model(images(1), text(2))
    assert out.logits.shape == (1, _anchors(64, 64), 2)
    assert torch.isfinite(out.box_dist).all() and torch.isfinite(out.logits).all()


def test_real_mobile_sam_encoder_half_size_input():
    """Scale n feeds SAM at half size: 64 px -> 32 px -> a 2x2 SAM map resized to the 4x4 stride-16 grid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(ModelConfig(scale="tiny", sam_imgsz=32), TEXT_DIM)
    f = model.sam_features(images(1))
    assert f.shape == (1, 256, 4, 4)
    out = model(images(1), text(2))
    total_loss(out).backward()
    assert all(p.grad is not None for p in model.sam.parameters())  # no weights -> SAM trains (warned)


def test_sam_warnings_and_freeze_rule():
    with pytest.warns(UserWarning, match="from scratch"):
        m = build_model(ModelConfig(scale="tiny"), TEXT_DIM, sam_encoder=StandInSAM())
    assert all(p.requires_grad for p in m.sam.parameters())
    with pytest.warns(UserWarning, match="no information"):
        m = build_model(ModelConfig(scale="tiny", sam_freeze=True), TEXT_DIM, sam_encoder=StandInSAM())
    assert not any(p.requires_grad for p in m.sam.parameters())
    assert m.param_groups()["sam"] == []


def test_frozen_parts_get_no_grad_and_trainable_parts_do():
    model = build(sam_freeze=True, expert_update=False).train()
    total_loss(model(images(2), text(3))).backward()
    groups = model.param_groups()
    assert groups["expert"] == [] and groups["sam"] == []
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, name
            assert name.startswith(("sam.", "expert.")) and ".attn" not in name
    nonzero = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"text_proj", "projection", "prompt", "inject", "v2t", "head", "expert"} <= nonzero  # expert: T-CSP extras
    # frozen expert BatchNorm keeps its running statistics in train mode
    bn = model.expert.backbone.stem[0].bn
    assert not bn.training
    assert model.expert.neck.top3.attn.embed.bn.training


def test_frozen_sam_runs_without_graph():
    model = build(sam_freeze=True)
    assert not model.sam_features(images(1)).requires_grad


def test_param_groups_partition_trainable_parameters():
    model = build()
    groups = model.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    expert_ids = {id(p) for p in groups["expert"]}
    attn = dict(model.expert.neck.top4.attn.named_parameters())
    assert not expert_ids & {id(p) for p in attn.values()}  # T->V extras train at the full lr
    assert id(model.expert.backbone.stem[0].conv.weight) in expert_ids
    assert groups["sam"] and {id(p) for p in groups["sam"]} == {id(p) for p in model.sam.parameters()}


def test_dp_pairs_only_in_training_while_active():
    model = build().train()
    assert len(model(images(1), text(2)).dp_pairs) == 3
    model.set_dp_active(False)
    assert not model.dp_active
    assert model(images(1), text(2)).dp_pairs == []
    model.set_dp_active(True)
    model.eval()
    with torch.no_grad():
        out = model(images(1), text(2))
    assert out.dp_pairs == [] and out.aux_box_dist is None


def test_eval_is_deterministic_training_is_stochastic():
    model = build(mask_ratio=0.0).eval()
    x, t = images(1), text(2)
    with torch.no_grad():
        a, b = model(x, t), model(x, t)
    torch.testing.assert_close(a.logits, b.logits)
    model.train()
    torch.manual_seed(1)
    c = model(x, t)
    torch.manual_seed(2)
    d = model(x, t)
    assert not torch.allclose(c.aux_box_dist, d.aux_box_dist)  # Bernoulli selection


def test_precomputed_sam_features_match():
    model = build(sam_freeze=True).eval()
    x, t = images(1), text(2)
    with torch.no_grad():
        a = model(x, t)
        b = model(x, t, sam_features=model.sam_features(x))
    torch.testing.assert_close(a.logits, b.logits)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_multichannel_input(channels):
    model = build(in_channels=channels)
    out = model(images(2, c=channels), text(2))
    assert out.logits.shape == (2, _anchors(64, 64), 2)
    x = images(1, c=channels)
    view = sam_view(x)
    assert view.shape == (1, 3, 64, 64)
    torch.testing.assert_close(view[:, 0], x[:, 0])
    torch.testing.assert_close(view[:, 2], x[:, 0] if channels < 3 else x[:, 2])


def test_bad_inputs_raise_clear_errors():
    model = build()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(images(1, h=48), text(2))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(images(1, c=1), text(2))
    with pytest.raises(ValueError, match="text must be"):
        model(images(1), text(2, dim=TEXT_DIM + 1))
    with pytest.raises(ValueError, match="text must be"):
        model(images(2), text(2, b=3))

"""Class-agnostic objectness (model.objectness): fused scores in eval, a separate loss term in training."""

from __future__ import annotations

import torch

from rtvp.loss import DetectionCriterion
from rtvp.models import ModelConfig, build_model
from rtvp.models.head import fuse_objectness
from rtvp.models.interaction import MASK_FILL
from rtvp.structures import Batch


def test_fused_score_is_the_geometric_mean_of_the_two_probabilities() -> None:
    logits = torch.tensor([[[-3.0, 0.0, 4.0, MASK_FILL]]])
    obj = torch.tensor([[1.5]])
    fused = fuse_objectness(logits, obj).sigmoid()
    expected = (logits.sigmoid() * obj.sigmoid().unsqueeze(-1)).sqrt()
    torch.testing.assert_close(fused[..., :3], expected[..., :3])
    assert fused[0, 0, 3] < 1e-30  # a padded prompt stays off


def _model(objectness: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(scale="tiny", sam=False, edp=False, objectness=objectness)
    return build_model(cfg, text_dim=16)


def test_switch_off_keeps_the_state_dict_and_on_adds_only_the_branch() -> None:
    off, on = _model(False), _model(True)
    extra = set(on.state_dict()) - set(off.state_dict())
    assert extra and all(k.startswith("head.obj.") for k in extra)
    assert set(off.state_dict()) <= set(on.state_dict())


def test_training_outputs_and_loss_term() -> None:
    model = _model(True).train()
    images, text = torch.rand(2, 3, 64, 64), torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    out = model(images, text)
    assert out.objectness.shape == out.logits.shape[:2]
    batch = Batch(images=images, gt_boxes=torch.tensor([[[8.0, 8.0, 40.0, 40.0]], [[0.0, 0.0, 0.0, 0.0]]]),
                  gt_labels=torch.tensor([[1], [-1]]), gt_mask=torch.tensor([[True], [False]]),
                  vocab_ids=torch.arange(3), image_ids=[1, 2], orig_sizes=torch.tensor([[64, 64], [64, 64]]),
                  scales=torch.ones(2), pads=torch.zeros(2, 2))
    res = DetectionCriterion(obj=2.0)(out, batch)
    assert res["obj"] > 0
    torch.testing.assert_close(res["loss"].detach(), 2 * sum(v for k, v in res.items() if k != "loss"))
    res["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.obj.parameters())
    assert "obj" not in DetectionCriterion()(_model(False).train()(images, text), batch)


def test_eval_logits_are_fused_with_the_objectness() -> None:
    model = _model(True)
    images, text = torch.rand(1, 3, 64, 64), torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    model.eval()
    model.head.training = True  # the head alone in training mode: unfused logits, BatchNorm still in eval
    raw = model(images, text)
    model.head.training = False
    fused = model(images, text)
    torch.testing.assert_close(fused.logits, fuse_objectness(raw.logits, raw.objectness), rtol=1e-4, atol=1e-4)

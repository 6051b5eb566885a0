"""``model.text_proj_freeze`` (issue 15 lever): a fixed semi-orthogonal text projection that keeps text geometry."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtvp.models import ModelConfig, build_model


def _model(freeze: bool, text_dim: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(scale="tiny", sam=False, edp=False, text_proj_freeze=freeze), text_dim=text_dim)


def test_frozen_projection_keeps_cosines_between_texts() -> None:
    model = _model(True)  # tiny: D = 32 >= Dt = 16, so the map is an isometry
    text = F.normalize(torch.randn(5, 16), dim=-1)
    proj = model.project_text(text)
    torch.testing.assert_close(proj @ proj.T, text @ text.T, atol=1e-5, rtol=0)
    learned = _model(False).project_text(text)
    assert (learned @ learned.T - text @ text.T).abs().max() > 0.05  # a random learned init does not


def test_wider_text_keeps_orthonormal_rows() -> None:
    w = _model(True, text_dim=64).text_proj.weight  # (32, 64): a projection onto a random 32-dim subspace
    torch.testing.assert_close(w @ w.T, torch.eye(32), atol=1e-5, rtol=0)


def test_frozen_projection_is_never_trained_and_keeps_the_state_dict() -> None:
    frozen, learned = _model(True), _model(False)
    assert set(frozen.state_dict()) == set(learned.state_dict())  # checkpoints load either way
    assert not any(p.requires_grad for p in frozen.text_proj.parameters())
    in_groups = {id(p) for group in frozen.param_groups().values() for p in group}
    assert not {id(p) for p in frozen.text_proj.parameters()} & in_groups
    learned_groups = {id(p) for group in learned.param_groups().values() for p in group}
    assert all(id(p) in learned_groups for p in learned.text_proj.parameters())
    before = frozen.text_proj.weight.clone()
    out = frozen(torch.rand(1, 3, 64, 64), F.normalize(torch.randn(3, 16), dim=-1))
    out.logits.float().sum().backward()
    assert frozen.text_proj.weight.grad is None and torch.equal(frozen.text_proj.weight, before)
    assert frozen.head is not None and any(p.grad is not None for p in frozen.head.parameters())

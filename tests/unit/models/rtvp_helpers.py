"""Shared helpers for the RTVPNet tests: a cheap SAM stand-in, builders, and a perturbation of zero inits."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from rtvp.models.config import ModelConfig
from rtvp.models.detector import RTVPNet, build_model
from rtvp.models.transfer import freeze_expert

TEXT_DIM = 16


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Toy tensors run fastest on one thread; two OpenMP threads on a shared 2-core box mostly spin."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class StandInSAM(nn.Module):
    """(B, 3, H, W) -> (B, 256, H/16, W/16) with one strided conv (same contract as MobileSAMEncoder)."""

    feature_dim = 256

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 256, 16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def build(seed: int = 0, text_dim: int = TEXT_DIM, sam_encoder: nn.Module | None = None, **kw) -> RTVPNet:
    """Tiny RTVPNet (all switches on unless overridden) with the stand-in SAM, seeded, zero inits perturbed."""
    expert_update = kw.pop("expert_update", True)
    cfg = ModelConfig(**{"scale": "tiny", **kw})
    torch.manual_seed(seed)
    encoder = (sam_encoder or StandInSAM()) if cfg.sam else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, text_dim, sam_encoder=encoder)
    if not expert_update:
        freeze_expert(model)
    perturb_zero_inits(model, seed)
    calibrate_bn(model)
    return model


def calibrate_bn(model: RTVPNet) -> None:
    """Set BatchNorm running statistics to one batch's statistics.

    Fresh running stats (mean 0, var 1) make eval-mode activations shrink layer after layer, so differences between
    variants would vanish in eval mode; one calibration pass gives realistic eval-mode feature scales.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    with torch.no_grad():
        torch.manual_seed(123)
        model(images(2, c=model.in_channels, seed=123), text(3, dim=model.text_dim, seed=123))
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m


def perturb_zero_inits(model: nn.Module, seed: int = 0) -> None:
    """Give gamma, the injection convs, the FiLM layers and the T-CSP fusion convs non-zero values.

    A freshly built model starts as its expert (these are zero on purpose); tests of "this component changes the
    output" need them active.
    """
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma") or "inject." in name or ".film." in name or "attn_proj" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def images(b: int = 2, c: int = 3, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def text(k: int = 3, dim: int = TEXT_DIM, b: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = (k, dim) if b is None else (b, k, dim)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def total_loss(out) -> torch.Tensor:
    """A scalar touching every differentiable output."""
    loss = out.box_dist.float().pow(2).mean() + out.logits.clamp(min=-50).mean() + out.text.sum() * 1e-3
    if out.aux_box_dist is not None:
        loss = loss + out.aux_box_dist.pow(2).mean()
    for pred, target in out.dp_pairs:
        loss = loss + (pred - target).pow(2).mean()
    return loss

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtvp.loss import dfl_loss, dfl_targets


def test_dfl_splits_ce_over_the_two_neighbouring_bins():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 4, 16, generator=g)
    target = torch.tensor([[2.3, 0.0, 7.5, 14.0]])
    ce = [-F.log_softmax(logits[0, s], -1) for s in range(4)]
    expect = ((0.7 * ce[0][2] + 0.3 * ce[0][3]) + ce[1][0] + (0.5 * ce[2][7] + 0.5 * ce[2][8]) + ce[3][14]) / 4
    torch.testing.assert_close(dfl_loss(logits, target, 16), expect.reshape(1), rtol=1e-5, atol=1e-6)
    # flat (N, 4 * reg_max) layout gives the same
    torch.testing.assert_close(dfl_loss(logits.view(1, 64), target, 16), expect.reshape(1), rtol=1e-5, atol=1e-6)


def test_dfl_targets_are_clamped_into_the_bin_range():
    torch.testing.assert_close(dfl_targets(torch.tensor([-1.0, 3.0, 15.0, 40.0]), 16),
                               torch.tensor([0.0, 3.0, 14.99, 14.99]))
    logits = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(1))
    logp = F.log_softmax(logits[0], -1)
    target = torch.tensor([[40.0, -3.0, 40.0, -3.0]])
    hi = -(0.01 * logp[0, 14] + 0.99 * logp[0, 15])
    lo = -logp[1, 0]
    expect = (hi + lo - (0.01 * logp[2, 14] + 0.99 * logp[2, 15]) - logp[3, 0]) / 4
    torch.testing.assert_close(dfl_loss(logits, target, 16), expect.reshape(1), rtol=1e-5, atol=1e-6)


def test_dfl_gradient_is_softmax_minus_two_bin_target():
    logits = torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    target = torch.rand(3, 4, generator=torch.Generator().manual_seed(3)) * 14.9
    dfl_loss(logits, target, 16).sum().backward()
    left = target.floor().long()
    q = torch.zeros(3, 4, 16)
    q.scatter_(-1, left[..., None], (left + 1 - target)[..., None])
    q.scatter_add_(-1, (left + 1)[..., None], (target - left)[..., None])
    torch.testing.assert_close(logits.grad, (logits.detach().softmax(-1) - q) / 4, rtol=1e-5, atol=1e-6)


def test_dfl_is_minimal_when_expectation_matches():
    # logits putting (0.7, 0.3) on bins (2, 3) decode to 2.3 and have lower loss than a sharp bin-2 guess.
    good = torch.full((1, 4, 16), -30.0)
    good[..., 2], good[..., 3] = torch.log(torch.tensor(0.7)), torch.log(torch.tensor(0.3))
    sharp = torch.full((1, 4, 16), -30.0)
    sharp[..., 2] = 0.0
    target = torch.full((1, 4), 2.3)
    assert dfl_loss(good, target) < dfl_loss(sharp, target)
    assert (good.softmax(-1) @ torch.arange(16.0)).allclose(torch.tensor(2.3))

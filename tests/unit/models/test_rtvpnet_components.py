"""Hand-computed cases: SimAM energy, sparse selection, max-sigmoid attention, V->T update, block masking."""

from __future__ import annotations

import math

import pytest
import torch
from rtvp_helpers import single_thread  # noqa: F401 (autouse fixture)

from rtvp.models.interaction import MaxSigmoidAttn, VisualTextUpdate
from rtvp.models.projection import block_mask
from rtvp.models.prompt import CBAM, ECA, EnergyActivation, SelfAttnActivation, build_activation, sparse_select


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_energy_activation_matches_simam_formula():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]], [[5.0, 5.0], [5.0, 1.0]]]])  # (1, 2, 2, 2)
    out = EnergyActivation()(x)
    # channel 0: mu = 1.5, unbiased var = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
    var0, lam = 5 / 3, 1e-4
    exp0 = [v * _sig((v - 1.5) ** 2 / (4 * (var0 + lam)) + 0.5) for v in (0.0, 1.0, 2.0, 3.0)]
    # channel 1: mu = 4, squared deviations 1, 1, 1, 9 -> unbiased var = 12 / 3 = 4
    exp1 = [v * _sig((v - 4) ** 2 / (4 * (4 + lam)) + 0.5) for v in (5.0, 5.0, 5.0, 1.0)]
    torch.testing.assert_close(out[0, 0].flatten(), torch.tensor(exp0))
    torch.testing.assert_close(out[0, 1].flatten(), torch.tensor(exp1))
    assert not list(EnergyActivation().parameters())


@pytest.mark.parametrize("name,cls", [("cbam", CBAM), ("eca", ECA), ("self_attn", SelfAttnActivation)])
def test_alternative_activations_keep_shape(name, cls):
    act = build_activation(name, 16)
    assert isinstance(act, cls)
    x = torch.randn(2, 16, 20, 12)
    assert act(x).shape == x.shape
    with pytest.raises(ValueError, match="unknown activation"):
        build_activation("softmax", 16)


def test_sparse_selection_candidates_and_expectation():
    u = torch.tensor([[0.1, 0.9, 0.2, 0.2], [0.5, 0.3, 0.2, 0.2], [0.0, 0.0, 0.6, 0.1], [0.0, 1.0, 0.7, 0.8]]).view(
        1, 1, 4, 4
    )
    s, cand = sparse_select(u, cells=2, sample=False)
    # patch means: top-left 0.45, top-right 0.2, bottom-left 0.25, bottom-right 0.55
    expected_cand = torch.tensor([[0, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], [0, 1, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(cand[0, 0], expected_cand)
    torch.testing.assert_close(s, expected_cand.view(1, 1, 4, 4) * u)


def test_sparse_selection_edge_patches_use_their_own_cells():
    u = torch.tensor([[0.2, 0.4, 0.9], [0.6, 0.8, 0.1], [0.3, 0.5, 0.7]]).view(1, 1, 3, 3)
    _, cand = sparse_select(u, cells=2, sample=False)
    # patches: [[.2,.4],[.6,.8]] mean .5; [[.9],[.1]] mean .5; [[.3,.5]] mean .4; [[.7]] mean .7
    expected = torch.tensor([[0, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(cand[0, 0], expected)


def test_sparse_selection_training_is_bernoulli_with_straight_through_gradient():
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2).requires_grad_(True)
    s, cand = sparse_select(u, cells=2, sample=True)  # mean 0.5 -> candidates are the 1.0 cells
    torch.testing.assert_close(cand[0, 0], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    torch.testing.assert_close(s.detach(), cand)  # Bernoulli(1) = 1, Bernoulli(0) = 0
    s.sum().backward()
    torch.testing.assert_close(u.grad, cand)  # dS/dU = candidate mask
    torch.manual_seed(0)
    half = torch.full((1, 1, 64, 64), 0.5)
    half[..., ::2, :] = 0.6  # candidates: the 0.6 rows
    s, cand = sparse_select(half, cells=2, sample=True)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert 0.5 < s.sum() / cand.sum() < 0.7  # mean of Bernoulli(0.6)


def _identity_attn() -> MaxSigmoidAttn:
    attn = MaxSigmoidAttn(c_in=2, c_out=2, embed_dim=2, heads=1).eval()
    with torch.no_grad():
        attn.embed.conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        attn.proj.conv.weight.zero_()
        attn.proj.conv.weight[:, :, 1, 1] = torch.eye(2)  # 3x3 kernel that copies the centre
        for bn in (attn.embed.bn, attn.proj.bn):
            bn.running_var.fill_(1 - bn.eps)  # BN(x) = x exactly
        attn.bias.fill_(0.25)
    return attn


def test_max_sigmoid_attention_by_hand():
    attn = _identity_attn()
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]]).view(1, 2, 1, 2)  # pixel 0 = (1, .5), pixel 1 = (-2, 3)
    t = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # two prompts
    # pixel 0: max(1, .5) = 1; pixel 1: max(-2, 3) = 3; a = max / sqrt(2) + 0.25
    w = torch.tensor([_sig(1 / math.sqrt(2) + 0.25), _sig(3 / math.sqrt(2) + 0.25)])
    torch.testing.assert_close(attn.weights(x, t)[0, 0, 0], w)
    torch.testing.assert_close(attn(x, t)[0, :, 0], x[0, :, 0] * w)
    # masking the second prompt: pixel 0 -> 1, pixel 1 -> -2
    mask = torch.tensor([[True, False]])
    w_masked = torch.tensor([_sig(1 / math.sqrt(2) + 0.25), _sig(-2 / math.sqrt(2) + 0.25)])
    torch.testing.assert_close(attn.weights(x, t, mask)[0, 0, 0], w_masked)


def test_max_sigmoid_heads_are_independent():
    attn = MaxSigmoidAttn(c_in=4, c_out=4, embed_dim=4, heads=2)
    assert attn(torch.randn(2, 4, 3, 5), torch.randn(2, 6, 4)).shape == (2, 4, 3, 5)
    with pytest.raises(ValueError, match="divisible"):
        MaxSigmoidAttn(4, 4, 6, 4)


def test_v2t_is_identity_at_init():
    v2t = VisualTextUpdate((4, 8), embed_dim=6)
    assert v2t.gamma.item() == 0.0
    text = torch.randn(2, 3, 6)
    out = v2t([torch.randn(2, 4, 5, 5), torch.randn(2, 8, 3, 3)], text)
    torch.testing.assert_close(out, text, rtol=0, atol=0)


def test_v2t_update_by_hand():
    v2t = VisualTextUpdate((2,), embed_dim=2)
    with torch.no_grad():
        v2t.proj[0].weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        v2t.proj[0].bias.zero_()
        v2t.gamma.fill_(0.5)
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]]).view(1, 2, 1, 2)
    t = torch.tensor([[[1.0, 0.0]]])
    # spatial score: softmax([1, -2] / sqrt 2); pooled = sum_n s_n x_n; g = sigmoid(t * mean_n x_n)
    s0, s1 = [v / (math.exp(1 / math.sqrt(2)) + math.exp(-2 / math.sqrt(2))) for v in
              (math.exp(1 / math.sqrt(2)), math.exp(-2 / math.sqrt(2)))]  # fmt: skip
    pooled = [s0 * 1.0 + s1 * -2.0, s0 * 0.5 + s1 * 3.0]
    g = [_sig(1.0 * -0.5), _sig(0.0 * 1.75)]
    expected = torch.tensor([[[1.0 + 0.5 * g[0] * pooled[0], 0.0 + 0.5 * g[1] * pooled[1]]]])
    torch.testing.assert_close(v2t([x], t), expected)


def test_block_mask_ratio_and_blocks():
    torch.manual_seed(0)
    m = block_mask(4, 8, 8, ratio=0.25, block=2, device=torch.device("cpu"))
    assert m.shape == (4, 1, 8, 8)
    blocks = m.view(4, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(4, 16, 4)
    assert ((blocks == 0).all(-1) | (blocks == 1).all(-1)).all()  # whole blocks dropped
    assert ((blocks == 0).all(-1).sum(1) == 4).all()  # round(0.25 * 16) blocks per sample
    assert not torch.equal(m[0], m[1])
    edge = block_mask(1, 5, 3, ratio=0.5, block=2, device=torch.device("cpu"))
    assert edge.shape == (1, 1, 5, 3)
    assert block_mask(2, 4, 4, ratio=0.0, block=2, device=torch.device("cpu")).all()

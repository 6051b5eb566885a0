import pytest
import torch
from rtvp_helpers import build, images, single_thread, text  # noqa: F401

from rtvp.models import ExpertDetector
from rtvp.models.fuse import fuse_conv_bn
from rtvp.models.layers import Conv
from rtvp.models.tinyvit import Attention, Conv2dBN


def _count_bn(model):
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_folded_expert_gives_the_same_outputs():
    torch.manual_seed(0)
    model = ExpertDetector("tiny", 3, 4).eval()
    for m in model.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        n_bn = _count_bn(model)
        assert fuse_conv_bn(model) == n_bn > 10 and _count_bn(model) == 0
        after = model(x)
    torch.testing.assert_close(after.logits, before.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after.box_dist, before.box_dist, atol=1e-4, rtol=1e-4)


def test_folded_rtvpnet_and_tinyvit_blocks():
    model = build(seed=1).eval()
    x, t = images(1), text(3)
    with torch.no_grad():
        before = model(x, t)
        fuse_conv_bn(model)
        after = model(x, t)
    torch.testing.assert_close(after.logits, before.logits, atol=1e-4, rtol=1e-4)
    block = Conv2dBN(4, 6, 3).eval()
    block.bn.running_mean.fill_(0.3)
    y = block(torch.ones(1, 4, 8, 8))
    assert fuse_conv_bn(block) == 1 and isinstance(block.bn, torch.nn.Identity)
    torch.testing.assert_close(block(torch.ones(1, 4, 8, 8)), y)


def test_fusing_a_training_model_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn(Conv(3, 4).train())


def test_attention_bias_cache_follows_the_parameter():
    attn = Attention(16, 2, 4).eval()
    x = torch.rand(3, 16, 16)
    with torch.no_grad():
        attn.attention_biases.normal_()
        first = attn(x)
        cached = attn._bias_cache[1]
        assert attn(x).equal(first) and attn._bias_cache[1] is cached  # reused
        attn.attention_biases.add_(1.0)  # e.g. an optimizer step or load_state_dict
        attn(x)
        assert attn._bias_cache[1] is not cached
        torch.testing.assert_close(attn._bias_cache[1], cached + 1.0)
    attn.train()
    out = attn(x)
    out.sum().backward()  # training path: the bias is recomputed with its gradient
    assert attn.attention_biases.grad is not None and attn.attention_biases.grad.abs().sum() > 0


def test_export_after_a_cached_forward_traces_the_bias_gather():
    attn = Attention(16, 2, 4).eval()
    x = torch.rand(3, 16, 16)
    with torch.no_grad():
        expected = attn(x)  # fills the cache
        exported = torch.export.export(attn, (x,))
    torch.testing.assert_close(exported.module()(x), expected)
    assert any("index_select" in str(n.target) for n in exported.graph.nodes)

"""MobileSAM encoder: shapes at any size, strict loading of the official key layout, errors, freezing, bias cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtvp.errors import CheckpointError
from rtvp.models.sam import (
    MOBILE_SAM_BLOB_SHA,
    MobileSAMEncoder,
    git_blob_sha1,
    load_mobile_sam,
    verify_mobile_sam,
)
from rtvp.models.tinyvit import relative_bias_index


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter and BN statistic non-default values so loading is actually observable."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if "num_batches_tracked" in name:
                continue
            if "running_var" in name:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(
                    torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") and t.ndim == 1 else 0)
                )


@pytest.fixture(scope="module")
def source() -> MobileSAMEncoder:
    torch.manual_seed(0)
    enc = MobileSAMEncoder()
    _randomise(enc)
    return enc.eval()


def _official_layout(enc: MobileSAMEncoder) -> dict[str, torch.Tensor]:
    sd = {"image_encoder." + k: v.clone() for k, v in enc.state_dict().items()}
    sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 128)
    sd["mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    sd["image_encoder.head.weight"] = torch.randn(1000, 320)
    sd["image_encoder.head.bias"] = torch.randn(1000)
    sd["image_encoder.norm_head.weight"] = torch.ones(320)
    sd["image_encoder.norm_head.bias"] = torch.zeros(320)
    return sd


@pytest.fixture(scope="module")
def official_file(source: MobileSAMEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sam") / "mobile_sam.pt"
    torch.save(_official_layout(source), path)
    return path


@pytest.mark.parametrize(("h", "w"), [(64, 64), (96, 128), (128, 128)])
def test_output_shape_any_multiple_of_32(h: int, w: int):
    enc = MobileSAMEncoder().eval()
    with torch.no_grad():
        out = enc(torch.rand(2, 3, h, w))
    assert out.shape == (2, 256, h // 16, w // 16)
    assert torch.isfinite(out).all()


def test_bad_input_shape_is_a_clear_error():
    enc = MobileSAMEncoder()
    with pytest.raises(ValueError, match="divisible by 16"):
        enc(torch.rand(1, 3, 72, 64))
    with pytest.raises(ValueError, match="RGB"):
        enc(torch.rand(1, 1, 64, 64))


def test_official_key_names_and_param_count():
    keys = set(MobileSAMEncoder().state_dict())
    for k in [
        "patch_embed.seq.0.c.weight",
        "patch_embed.seq.2.bn.running_var",
        "layers.0.blocks.1.conv3.bn.weight",
        "layers.2.downsample.conv2.c.weight",
        "layers.1.blocks.0.attn.attention_biases",
        "layers.3.blocks.1.attn.qkv.weight",
        "layers.2.blocks.5.mlp.fc2.bias",
        "layers.3.blocks.0.local_conv.bn.bias",
        "neck.0.weight",
        "neck.3.bias",
    ]:
        assert k in keys, k
    assert not any("attention_bias_idxs" in k or "pixel_" in k or k.startswith("head") for k in keys)
    enc = MobileSAMEncoder()
    assert enc.layers[2].downsample.conv2.c.stride == (1, 1)  # MobileSAM's stride-1 last merge
    assert enc.layers[2].blocks[0].attn.attention_biases.shape == (5, 14 * 14)
    assert sum(p.numel() for p in enc.parameters()) == 5_743_892


def test_relative_bias_index_matches_first_appearance_numbering():
    # hand-computed for a 2x2 window: tokens (0,0),(0,1),(1,0),(1,1); offset (|dy|,|dx|) -> |dy|*2+|dx|
    expected = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
    assert torch.equal(relative_bias_index(2), expected)
    assert relative_bias_index(7).max() == 48


def test_strict_load_of_official_layout_reproduces_source(source: MobileSAMEncoder, official_file: Path):
    loaded = load_mobile_sam(official_file).eval()
    x = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))
    # a freshly built encoder differs, so the comparison above is not vacuous
    with torch.no_grad():
        assert not torch.allclose(MobileSAMEncoder().eval()(x), source(x))


def test_bare_encoder_state_dict_and_wrapped_dict_load(source: MobileSAMEncoder, tmp_path: Path):
    x = torch.rand(1, 3, 64, 64)
    for i, obj in enumerate([source.state_dict(), {"model": _official_layout(source)}]):
        torch.save(obj, tmp_path / f"w{i}.pt")
        with torch.no_grad():
            assert torch.equal(load_mobile_sam(tmp_path / f"w{i}.pt").eval()(x), source(x))


def test_bias_cache_follows_loaded_weights_and_mode_switches(source: MobileSAMEncoder, official_file: Path):
    enc = MobileSAMEncoder().eval()  # eval BEFORE loading: the MobileSAM pitfall (stale cached biases)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        enc(x)
        enc.load_state_dict(load_mobile_sam(official_file).state_dict())
        assert torch.equal(enc(x), source(x))
        enc.train().eval()
        assert torch.equal(enc(x), source(x))
        enc.layers[1].blocks[0].attn.attention_biases.add_(1.0)  # an in-place edit shows up at once
        assert not torch.equal(enc(x), source(x))


def _expect_error(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_mobile_sam(path)
    assert str(path) in str(info.value)


def test_wrong_files_raise_checkpoint_error(source: MobileSAMEncoder, tmp_path: Path):
    torch.save(torch.randn(3, 4), tmp_path / "tensor.pt")
    _expect_error(tmp_path / "tensor.pt", "expected a MobileSAM state dict")
    torch.save({"prompt_encoder.a": torch.zeros(1), "mask_decoder.b": torch.zeros(1)}, tmp_path / "noenc.pt")
    _expect_error(tmp_path / "noenc.pt", "without any 'image_encoder")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    _expect_error(tmp_path / "garbage.pt", "cannot be read")
    _expect_error(tmp_path / "missing.pt", "not found")


def test_shape_mismatch_and_missing_keys_are_listed(source: MobileSAMEncoder, tmp_path: Path):
    sd = _official_layout(source)
    sd["image_encoder.neck.0.weight"] = torch.zeros(128, 320, 1, 1)
    torch.save(sd, tmp_path / "shape.pt")
    _expect_error(tmp_path / "shape.pt", r"shape mismatch.*neck\.0\.weight: file \(128, 320, 1, 1\)")
    sd = _official_layout(source)
    del sd["image_encoder.layers.3.blocks.1.attn.qkv.bias"]
    sd["image_encoder.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "keys.pt")
    _expect_error(tmp_path / "keys.pt", r"1 missing key.*qkv\.bias.*1 unexpected key.*extra\.weight")


def test_git_blob_sha_helper(tmp_path: Path):
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello\n")
    assert git_blob_sha1(f) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"
    with pytest.raises(CheckpointError, match=MOBILE_SAM_BLOB_SHA):
        verify_mobile_sam(f)
    with pytest.raises(CheckpointError, match="git blob sha"):
        load_mobile_sam(f, check_sha=True)


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval():
    enc = MobileSAMEncoder().freeze()
    head = torch.nn.Conv2d(256, 1, 1)
    enc.train()  # a parent's .train() must not put BN back into training mode
    assert not enc.training and not enc.patch_embed.seq[0].bn.training
    before = enc.patch_embed.seq[0].bn.running_mean.clone()
    out = enc(torch.rand(2, 3, 64, 64))
    assert not out.requires_grad
    head(out).mean().backward()
    assert all(p.grad is None and not p.requires_grad for p in enc.parameters())
    assert head.weight.grad is not None
    assert torch.equal(enc.patch_embed.seq[0].bn.running_mean, before)
    enc.unfreeze().train()
    assert enc.training and all(p.requires_grad for p in enc.parameters())


def test_trainable_encoder_gets_gradients_everywhere():
    torch.manual_seed(0)
    enc = MobileSAMEncoder().train()
    _randomise(enc, seed=1)  # non-zero MBConv/BN weights so every branch carries gradient
    enc(torch.rand(2, 3, 64, 96)).pow(2).mean().backward()
    no_grad = [n for n, p in enc.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert no_grad == []


def test_window_attention_matches_explicit_relative_bias_math():
    """Attention == softmax(q k^T / sqrt(d) + B) v with B[h, i, j] = biases[h, |dy| w + |dx|], written out by loops."""
    from rtvp.models.tinyvit import Attention

    torch.manual_seed(0)
    w, heads, dim = 3, 2, 8
    attn = Attention(dim, heads, w).eval()
    with torch.no_grad():
        attn.attention_biases.normal_()
    x = torch.randn(2, w * w, dim)
    qkv = attn.qkv(attn.norm(x)).view(2, w * w, heads, 3 * (dim // heads)).transpose(1, 2)
    q, k, v = qkv.split(dim // heads, dim=-1)
    bias = torch.zeros(heads, w * w, w * w)
    for h in range(heads):
        for i in range(w * w):
            for j in range(w * w):
                dy, dx = abs(i // w - j // w), abs(i % w - j % w)
                bias[h, i, j] = attn.attention_biases[h, dy * w + dx]
    scores = (q @ k.transpose(-1, -2)) / (dim // heads) ** 0.5 + bias
    expected = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, w * w, dim))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("h", "w"), [(6, 6), (3, 5), (7, 1)])
def test_single_padded_window_shortcut_equals_the_padded_window(h: int, w: int):
    """A map smaller than the window: real tokens + one padding key == attention over the zero-padded window."""
    from rtvp.models.tinyvit import TinyViTBlock

    torch.manual_seed(0)
    ws, dim = 7, 16
    block = TinyViTBlock(dim, 2, ws, 4.0).train()
    with torch.no_grad():
        block.attn.attention_biases.normal_()
        block.attn.norm.bias.normal_()  # padding tokens' keys/values come from the LayerNorm bias: make it matter
    x = torch.randn(2, h, w, dim)
    padded = torch.nn.functional.pad(x, (0, 0, 0, ws - w, 0, ws - h)).reshape(2, ws * ws, dim)
    expected = block.attn(padded).view(2, ws, ws, dim)[:, :h, :w]
    got = block._window_attention(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    g_exp = torch.autograd.grad(expected.pow(2).sum(), [block.attn.attention_biases, block.attn.qkv.weight])
    g_got = torch.autograd.grad(got.pow(2).sum(), [block.attn.attention_biases, block.attn.qkv.weight])
    for a, b in zip(g_got, g_exp, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_single_padded_window_shortcut_is_taken_and_eval_matches_train():
    """The shortcut attends over h*w + 1 keys (not window**2) and gives the same output with the cached eval bias."""
    from rtvp.models.tinyvit import TinyViTBlock

    torch.manual_seed(0)
    block = TinyViTBlock(16, 2, 14, 4.0)
    with torch.no_grad():
        block.attn.attention_biases.normal_()
    seen = []
    block.attn.register_forward_hook(lambda *_: seen.append("padded forward"))
    x = torch.randn(1, 6, 6, 16)
    train_out = block.train()._window_attention(x)
    with torch.no_grad():
        eval_out = block.eval()._window_attention(x)
    assert seen == []  # Attention.forward (the ws*ws padded path) never ran
    torch.testing.assert_close(eval_out, train_out.detach())
    block.corner_shortcut = False  # the switch benchmarks/sam_window.py measures with: the padded path, same result
    with torch.no_grad():
        padded_out = block._window_attention(x)
    assert seen == ["padded forward"]
    torch.testing.assert_close(padded_out, eval_out, rtol=1e-5, atol=1e-5)

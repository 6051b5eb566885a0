"""``rtvp.models.layers.Conv2d``: fp32 fallback for the convolutions whose bf16 weight gradient is slow on CPU."""

import pytest
import torch
from torch import nn

from rtvp.models.layers import Conv2d, set_bf16_conv_fallback


def _out_dtype(conv: nn.Module, size: int, grad: bool = True) -> torch.dtype:
    x = torch.randn(2, conv.in_channels, size, size)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        return conv(x).dtype


@pytest.mark.parametrize(("stride", "size", "expected"), [
    (2, 32, torch.float32),   # strided: fp32
    (1, 10, torch.float32),   # 10x10 = 100 output pixels: fp32
    (1, 11, torch.bfloat16),  # 121 output pixels, stride 1: bf16
])
def test_training_conv_falls_back_to_fp32_for_slow_shapes(stride: int, size: int, expected: torch.dtype) -> None:
    conv = Conv2d(8, 8, 3, stride, 1).train()
    previous = set_bf16_conv_fallback(True)
    try:
        assert _out_dtype(conv, size) == expected
    finally:
        set_bf16_conv_fallback(previous)


def test_fallback_only_in_training_with_grad_and_when_enabled() -> None:
    conv = Conv2d(8, 8, 3, 2, 1)
    assert _out_dtype(conv.train(), 32) == torch.bfloat16  # off by default
    previous = set_bf16_conv_fallback(True)
    try:
        assert previous is False
        assert _out_dtype(conv.eval(), 32) == torch.bfloat16  # inference keeps the bf16 forward
        assert _out_dtype(conv.train(), 32, grad=False) == torch.bfloat16
        assert _out_dtype(conv.train(), 32) == torch.float32
    finally:
        set_bf16_conv_fallback(previous)


def test_same_state_dict_and_numbers_as_nn_conv2d() -> None:
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, 3, 2, 1)
    conv = Conv2d(4, 6, 3, 2, 1)
    conv.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 4, 16, 16)
    assert list(conv.state_dict()) == list(ref.state_dict())
    torch.testing.assert_close(conv(x), ref(x))
    previous = set_bf16_conv_fallback(True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the fallback is the fp32 convolution, exactly
            y = conv(x)
    finally:
        set_bf16_conv_fallback(previous)
    torch.testing.assert_close(y, ref(x))

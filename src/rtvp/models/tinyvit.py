"""TinyViT-5M as used by MobileSAM's image encoder, written to be resolution-agnostic.

The module and parameter names follow MobileSAM's ``mobile_sam/modeling/tiny_vit_sam.py`` exactly (``patch_embed.seq``,
``layers.{i}.blocks.{j}``, ``layers.{i}.downsample.conv{1,2,3}``, ``attn.attention_biases``, ``local_conv``, ``mlp``,
``neck``), so the official ``mobile_sam.pt`` loads strictly after stripping ``image_encoder.``. Differences from the
original, none of which changes the weights or the numerics at 1024 px:

- No input-resolution bookkeeping: every stage reads (H, W) from the tensor it receives, windows are zero-padded to a
  multiple of the window size (as the original does) and the neck reshapes from the actual map size, so any input
  whose sides are multiples of 16 works (output stride 16).
- The relative-position bias is gathered from ``attention_biases`` with ``index_select`` over a flat index (0.14 ms
  for the 5 x 196 x 196 bias of stage 2 on one CPU thread, vs 0.83 ms with advanced indexing); without gradients the
  table is cached, keyed on the parameter's version counter, so ``load_state_dict``, an EMA update or an optimizer
  step invalidates it at once (MobileSAM's own eval-mode cache goes stale after loading).
- No classifier (``norm_head``/``head``): MobileSAM never uses it.
- Attention runs through ``F.scaled_dot_product_attention`` with the bias as an additive mask (same math).
- A map smaller than its stage's window (e.g. stage 2's 14 x 14 window on the 6 x 6 map of a 96-px input) attends
  over its real tokens plus one key standing for all the zero padding (``Attention.forward_corner``): the same
  result as the padded window, exactly, at a fraction of the cost.

Architecture (5.7 M parameters incl. neck): patch embed (two stride-2 3x3 Conv2d_BN, 3->32->64) -> stage 0: 2 MBConv
(dim 64) + PatchMerging to 128, stride 2 -> stage 1: 2 TinyViT blocks (128, 4 heads, window 7) + PatchMerging to 160,
stride 2 -> stage 2: 6 blocks (160, 5 heads, window 14) + PatchMerging to 320 with **stride 1** -> stage 3: 2 blocks
(320, 10 heads, window 7) -> neck: 1x1 conv 320->256, LayerNorm2d, 3x3 conv 256->256, LayerNorm2d (eps 1e-6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from rtvp.models.layers import Conv2d


class Conv2dBN(nn.Sequential):
    """Bias-free Conv2d followed by BatchNorm2d; children are named ``c`` and ``bn`` as in MobileSAM."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, bn_weight: float = 1.0):
        super().__init__()
        self.add_module("c", Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False))
        bn = nn.BatchNorm2d(c_out)
        nn.init.constant_(bn.weight, bn_weight)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) map (SAM's neck norm)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), each pixel's channel vector normalised."""
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    """Stride-4 stem: Conv2d_BN(3->dim/2, 3x3, s2) -> GELU -> Conv2d_BN(dim/2->dim, 3x3, s2)."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, dim // 2, 3, 2), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, dim, H/4, W/4)."""
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> GELU -> 3x3 depthwise -> GELU -> 1x1 project (+ shortcut) -> GELU."""

    def __init__(self, dim: int, expand: float, drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = Conv2dBN(dim, hidden, 1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2dBN(hidden, dim, 1, bn_weight=0.0)
        self.act3 = nn.GELU()
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(x + self.drop_path(y))


class PatchMerging(nn.Module):
    """1x1 Conv2d_BN -> GELU -> 3x3 depthwise Conv2d_BN (stride 2, or 1 for MobileSAM's last merge) -> GELU -> 1x1."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.act = nn.GELU()
        self.conv1 = Conv2dBN(dim, out_dim, 1)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, out_dim, H/stride, W/stride)."""
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


def relative_bias_index(window: int) -> torch.Tensor:
    """Index of the learned bias for every (query, key) pair of a window, as in TinyViT/LeViT.

    The offset between tokens (y1, x1) and (y2, x2) is (|y1-y2|, |x1-x2|); MobileSAM numbers the offsets in order of
    first appearance, which for a square window is ``|dy| * window + |dx|``.

    Args:
        window: Window side length w.

    Returns:
        (w*w, w*w) int64 indices into the last axis of ``attention_biases`` (num_heads, w*w).
    """
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()


class Attention(nn.Module):
    """Multi-head self-attention over the tokens of one window, with a learned relative-position bias.

    LayerNorm first; ``qkv`` is laid out per head as [q, k, v] (MobileSAM's ``view(B, N, heads, -1).split``).
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        self.register_buffer("attention_bias_idxs", relative_bias_index(window).flatten(), persistent=False)
        self._bias_cache: tuple[tuple, torch.Tensor] | None = None

    def bias(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        """(heads, N, N) relative-position bias; cached at inference until the parameter or dtype changes.

        The cache key holds the parameter's version counter, which every in-place update (optimizer step,
        ``load_state_dict``) bumps, so a cached table is never stale.
        """
        tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()  # export: a graph, not a cached tensor
        if tracing or (torch.is_grad_enabled() and self.attention_biases.requires_grad):
            return self.attention_biases.index_select(1, self.attention_bias_idxs).view(-1, n, n).to(dtype)
        p = self.attention_biases
        key = (p._version, p.data_ptr(), p.device, dtype, n)
        if self._bias_cache is None or self._bias_cache[0] != key:
            table = p.detach().index_select(1, self.attention_bias_idxs).view(-1, n, n).to(dtype)
            self._bias_cache = (key, table)
        return self._bias_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B', N, C) window tokens (N = window**2) -> (B', N, C)."""
        b, n, c = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)  # each (B', heads, N, head_dim)
        bias = self.bias(n, q.dtype)  # (h, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def forward_corner(self, x: torch.Tensor, h: int, w: int, window: int) -> torch.Tensor:
        """Attention of one zero-padded ``window`` x ``window`` window for its real top-left ``h`` x ``w`` tokens.

        The same result as :meth:`forward` on the padded window, restricted to the real tokens, at a fraction of the
        cost (a 6 x 6 map in stage 2's 14 x 14 window: 36 x 37 scores instead of 196 x 196). Every padding token is
        the zero vector, so all of them share one key and one value (``qkv(norm(0))``); their summed attention
        weight, ``exp(q.k_pad / sqrt(d)) * sum_j exp(bias_ij)``, is that of a single extra key whose bias is the
        logsumexp of the padding positions' biases.

        Args:
            x: (B, h*w, C) the real tokens, row-major.
            h: real rows (<= window).
            w: real columns (<= window).
            window: the window side the bias table was learned for.

        Returns:
            (B, h*w, C).
        """
        b, n, c = x.shape
        qkv = self.qkv(self.norm(torch.cat([x, x.new_zeros(b, 1, c)], 1)))  # last token: one padding token
        qkv = qkv.view(b, n + 1, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)  # each (B, heads, n + 1, head_dim)
        cells = torch.arange(window * window, device=x.device).view(window, window)
        real = cells[:h, :w].flatten()
        pad = torch.cat([cells[:h, w:].flatten(), cells[h:].flatten()])  # index lists, no boolean masks (meta-safe)
        table = self.bias(window * window, torch.float32).index_select(1, real)  # (heads, n, window**2)
        pad_bias = table.index_select(2, pad).logsumexp(-1, keepdim=True)  # (heads, n, 1)
        bias = torch.cat([table.index_select(2, real), pad_bias], -1)  # (heads, n, n + 1)
        out = F.scaled_dot_product_attention(q[:, :, :n], k, v, attn_mask=bias.to(q.dtype).unsqueeze(0))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """LayerNorm -> Linear(dim, ratio*dim) -> GELU -> Linear(ratio*dim, dim)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)."""
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """x + window_attn(x) -> depthwise 3x3 ``local_conv`` -> x + mlp(x); windows zero-padded at bottom/right.

    ``corner_shortcut`` (class attribute, on): a map inside one window skips the padding (``Attention.forward_corner``);
    off only to measure it (``benchmarks/sam_window.py``).
    """

    corner_shortcut = True

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.local_conv = Conv2dBN(dim, dim, 3, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path, "row")

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C): attention inside non-overlapping windows of the zero-padded map."""
        b, h, w, c = x.shape
        ws = self.window
        pad_b, pad_r = (-h) % ws, (-w) % ws
        if (pad_b or pad_r) and h <= ws and w <= ws and self.corner_shortcut:  # one padded window: exact shortcut
            return self.attn.forward_corner(x.reshape(b, h * w, c), h, w, ws).view(b, h, w, c)
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (h + pad_b) // ws, (w + pad_r) // ws
        x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
        x = self.attn(x)
        x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, nh * ws, nw * ws, c)
        return x[:, :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        t = t + self.drop_path(self._window_attention(t))
        t = self.local_conv(t.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)
        t = t + self.drop_path(self.mlp(t))
        return t.permute(0, 3, 1, 2).contiguous()


class Stage(nn.Module):
    """``blocks`` followed by an optional ``downsample`` (PatchMerging); named like MobileSAM's ConvLayer/BasicLayer."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C', H', W')."""
        for blk in self.blocks:
            x = blk(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """MobileSAM's TinyViT image encoder (no classifier), any input size divisible by 16.

    Args:
        in_chans: Input channels (3 for SAM).
        embed_dims: Channels of the four stages.
        depths: Blocks per stage (stage 0 is MBConv, the rest TinyViT blocks).
        num_heads: Attention heads of stages 1-3 (entry 0 unused).
        window_sizes: Attention window of stages 1-3 (entry 0 unused).
        mlp_ratio: MLP hidden ratio.
        mbconv_expand: MBConv expansion ratio.
        last_stride: Stride of the last PatchMerging (1 in MobileSAM, keeping stride 16 overall).
        out_chans: Neck output channels.
        drop_path_rate: Max stochastic-depth rate (linear over blocks); 0 as MobileSAM.
    """

    def __init__(
        self,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand: float = 4.0,
        last_stride: int = 1,
        out_chans: int = 256,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.out_chans = out_chans
        self.stride = 4 * 2 ** (len(depths) - 2) * last_stride
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        self.layers = nn.ModuleList()
        for i, dim in enumerate(embed_dims):
            rates = dpr[sum(depths[:i]) : sum(depths[: i + 1])]
            if i == 0:
                blocks: list[nn.Module] = [MBConv(dim, mbconv_expand, r) for r in rates]
            else:
                blocks = [TinyViTBlock(dim, num_heads[i], window_sizes[i], mlp_ratio, r) for r in rates]
            last = i == len(depths) - 1
            stride = last_stride if i == len(depths) - 2 else 2
            down = None if last else PatchMerging(dim, embed_dims[i + 1], stride)
            self.layers.append(Stage(blocks, down))
        self.neck = nn.Sequential(
            Conv2d(embed_dims[-1], out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) already normalised -> (B, out_chans, H/16, W/16)."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


def _init_weights(m: nn.Module) -> None:
    """TinyViT's init: truncated-normal(0.02) Linear weights with zero bias, LayerNorm (1, 0)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)

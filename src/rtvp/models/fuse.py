"""The lean inference form of a trained model: BatchNorm folded into the convolution before it.

A BatchNorm in eval mode is an affine map per channel, so ``bn(conv(x))`` equals one convolution with scaled weights
and a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``); in a T-CSP block, ``bn(conv(a) + attn_proj(b))``, the
scale also goes into ``attn_proj``. Folding removes one full pass over every feature map per
block (YOLOv8's ``Conv.fuse`` does the same). The fused model has other ``state_dict`` keys: it is for inference
and export only, never for training or saving.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from rtvp.models.interaction import C2fAttn
from rtvp.models.layers import Conv
from rtvp.models.tinyvit import Conv2dBN


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold every ``Conv`` block's and TinyViT ``Conv2dBN``'s BatchNorm into its convolution, in place.

    Args:
        model: a model in eval mode (running statistics are what gets folded).

    Returns:
        Number of BatchNorm layers folded.

    Raises:
        ValueError: the model is in training mode (its BatchNorm would still update and use batch statistics).
    """
    if model.training:
        raise ValueError("fuse_conv_bn needs a model in eval mode (call model.eval() first)")
    folded = 0
    for module in model.modules():  # pre-order: a T-CSP block is seen before its cv2
        if isinstance(module, C2fAttn) and isinstance(module.cv2.bn, nn.BatchNorm2d):
            # T-CSP computes bn(cv2.conv(a) + attn_proj(b)): the BatchNorm scale applies to both terms
            bn = module.cv2.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            with torch.no_grad():
                module.attn_proj.weight.mul_(scale.view(-1, 1, 1, 1))
        if isinstance(module, Conv) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv, module.bn = fuse_conv_bn_eval(module.conv, module.bn), nn.Identity()
            folded += 1
        elif isinstance(module, Conv2dBN) and isinstance(module.bn, nn.BatchNorm2d):
            module.c, module.bn = fuse_conv_bn_eval(module.c, module.bn), nn.Identity()
            folded += 1
    return folded

"""RTVPNet and its parts (nn.Modules only; no loss code). The SAM encoder and text encoders load lazily.

Examples:
    >>> import torch
    >>> from rtvp.models import ModelConfig, build_model, postprocess
    >>> model = build_model(ModelConfig(scale="tiny", sam=False, edp=False), text_dim=16).eval()
    >>> out = model(torch.rand(1, 3, 64, 64), torch.randn(2, 16))
    >>> boxes, scores, labels = postprocess(out, conf=0.5)[0]
"""

from __future__ import annotations

from rtvp.models.config import ModelConfig
from rtvp.models.decode import decode_boxes, make_anchors, postprocess
from rtvp.models.detector import RTVPNet, build_model
from rtvp.models.expert import Expert, ExpertDetector
from rtvp.models.outputs import RawOutputs
from rtvp.models.scales import SCALES, Scale

__all__ = [
    "SCALES",
    "Expert",
    "ExpertDetector",
    "ModelConfig",
    "RTVPNet",
    "RawOutputs",
    "Scale",
    "build_model",
    "decode_boxes",
    "make_anchors",
    "postprocess",
]

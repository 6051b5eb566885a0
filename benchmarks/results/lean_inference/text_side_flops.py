"""How much of rtvpnet-n's inference is the text side that a fixed vocabulary would let us fold away?

``torch.utils.flop_counter`` over one eval forward of rtvpnet-n at 320 px, batch 1, 6 prompts: the T->V attention's
image-side embedding convolutions (``*.attn.embed``, which folding the text into them would replace by a K-channel
convolution) and the text projection (``text_proj``, a constant per vocabulary), against the total.
Run from the repository root; writes ``text_side_flops.json`` beside this file.
"""
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import machine_info  # noqa: E402
from cost import build  # noqa: E402

model = build("rtvpnet-n", 6).eval()
images = torch.rand(1, 3, 320, 320)
text = torch.nn.functional.normalize(torch.randn(6, 384), dim=-1)
with FlopCounterMode(display=False, depth=None) as counter, torch.no_grad():
    model(images, text)
per_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
total = counter.get_total_flops()
attn = {k: v for k, v in per_module.items() if k.endswith(".attn.embed")}
proj = per_module.get("RTVPNet.text_proj", 0)
out = {"machine": machine_info(), "total_gflops": total / 1e9,
       "attn_embed_mflops": {k: v / 1e6 for k, v in attn.items()}, "attn_embed_share": sum(attn.values()) / total,
       "text_proj_mflops": proj / 1e6, "text_proj_share": proj / total}
print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1))
Path(__file__).with_name("text_side_flops.json").write_text(json.dumps(out, indent=1))

"""Tiny fake components for the trainer tests: a dataset of Batch samples, a detector returning RawOutputs and a
criterion. They follow the contracts (RawOutputs, Batch, criterion dict) without depending on rtvp.models/data/loss.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from rtvp.models.outputs import RawOutputs
from rtvp.structures import Batch
from rtvp.training.config import TrainConfig
from rtvp.training.distributed import make_loader
from rtvp.training.runner import TrainParts
from rtvp.training.stages import DPTerminationHook

SIZE = 32


class ToyDataset(Dataset):
    """``n`` fixed 3x32x32 images with 0-2 boxes each; ``__getitem__`` adds noise from the GLOBAL torch/numpy RNGs
    (like an augmentation would), so exact resumption needs the RNG states restored."""

    def __init__(self, n: int = 12, nc: int = 3) -> None:
        g = torch.Generator().manual_seed(123)
        self.nc = nc
        self.images = torch.rand(n, 3, SIZE, SIZE, generator=g)
        self.labels = [torch.randint(0, nc, (i % 3,), generator=g) for i in range(n)]
        for i, lab in enumerate(self.labels):  # paint a bright square per object so the task is learnable
            for j, c in enumerate(lab.tolist()):
                self.images[i, c, 4 + 12 * j: 12 + 12 * j, 4:12] = 1.0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        img = (self.images[i] + 0.05 * torch.rand(3, SIZE, SIZE)).clamp(0, 1)
        if np.random.rand() < 0.5:  # noqa: NPY002 - deliberately the global RNG
            img = img.flip(-1)
        lab = self.labels[i]
        boxes = torch.tensor([[4.0, 4 + 12 * j, 12.0, 12 + 12 * j] for j in range(len(lab))]).reshape(-1, 4)
        return {"image": img, "boxes": boxes, "labels": lab, "id": i}


def toy_collate(samples: list[dict], nc: int = 3) -> Batch:
    """Pad boxes to the batch max; vocabulary = all ``nc`` classes."""
    b, m = len(samples), max(1, max(len(s["labels"]) for s in samples))
    boxes, labels = torch.zeros(b, m, 4), torch.full((b, m), -1, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["labels"])
        boxes[i, :n], labels[i, :n] = s["boxes"], s["labels"]
    return Batch(images=torch.stack([s["image"] for s in samples]), gt_boxes=boxes, gt_labels=labels,
                 gt_mask=labels >= 0, vocab_ids=torch.arange(nc), image_ids=[s["id"] for s in samples],
                 orig_sizes=torch.full((b, 2), SIZE), scales=torch.ones(b), pads=torch.zeros(b, 2))


class ToyDetector(nn.Module):
    """Stride-8 conv "expert" + box/class heads. With ``text_dim`` it is text-conditioned (contrastive logits,
    ``model(images, text, text_mask)``); with ``with_dp`` it emits one ``dp_pairs`` entry while L_dp is active."""

    def __init__(self, nc: int = 3, reg_max: int = 4, text_dim: int | None = None, with_dp: bool = False) -> None:
        super().__init__()
        self.reg_max, self.with_dp, self.dp_active = reg_max, with_dp, True
        self.expert = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.BatchNorm2d(8), nn.SiLU())
        self.box = nn.Conv2d(8, 4 * reg_max, 1)
        self.cls = nn.Conv2d(8, 8 if text_dim else nc, 1)
        self.text_proj = nn.Linear(text_dim, 8) if text_dim else None
        self.align = nn.Conv2d(8, 8, 1) if with_dp else None
        self.calls: list[tuple] = []

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        expert = [p for p in self.expert.parameters() if p.requires_grad]
        ids = {id(p) for p in expert}
        return {"expert": expert, "other": [p for p in self.parameters() if p.requires_grad and id(p) not in ids]}

    def set_dp_active(self, active: bool) -> None:
        self.dp_active = bool(active)

    def forward(self, images: torch.Tensor, text: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None) -> RawOutputs:
        f = self.expert(images)
        b, _, h, w = f.shape
        flat = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731
        logits = flat(self.cls(f))
        if self.text_proj is not None:
            self.calls.append((text.detach().clone(), None if text_mask is None else text_mask.clone()))
            t = F.normalize(self.text_proj(text), dim=-1)
            logits = F.normalize(logits, dim=-1) @ t.T * 5.0
            if text_mask is not None:
                logits = logits.masked_fill(~text_mask, -1e4)
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        anchors = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * 8
        pairs = []
        if self.with_dp and self.training and self.dp_active:
            pairs = [(self.align(f), f.detach() * 0.5)]
        return RawOutputs(box_dist=flat(self.box(f)), logits=logits, anchors=anchors.to(f.device),
                          strides=torch.full((h * w,), 8.0, device=f.device), dp_pairs=pairs,
                          reg_max=self.reg_max)


def toy_criterion(outputs: RawOutputs, batch: Batch) -> dict[str, torch.Tensor]:
    """BCE of the anchor-max logits against class presence + a small box term + L_dp."""
    k = outputs.logits.shape[-1]
    valid = batch.vocab_ids >= 0
    onehot = F.one_hot(batch.gt_labels.clamp(min=0), k).float() * batch.gt_mask[..., None]
    present = onehot.amax(1)  # (B, K)
    cls = F.binary_cross_entropy_with_logits(outputs.logits.amax(1)[:, valid], present[:, valid])
    box = 0.01 * outputs.box_dist.pow(2).mean()
    dp = sum((F.mse_loss(p, t) for p, t in outputs.dp_pairs), cls.new_zeros(()))
    loss = cls + box + dp
    return {"loss": loss, "cls": cls.detach(), "box": box.detach(), "dp": dp.detach()}


def toy_cfg(tmp: Path, **kw) -> TrainConfig:
    """A fast config: CPU, no workers, EMA with a short ramp, no TensorBoard/plots unless asked."""
    base = dict(epochs=2, batch=4, imgsz=32, lr=0.01, warmup_iters=2, workers=0, device="cpu", ema_tau=5.0,
                tensorboard=False, plots=False, out=tmp, val_period=0, arch="expert")
    base.update(kw)
    return TrainConfig(**base)


def toy_parts(cfg: TrainConfig, n: int = 12, text_dim: int | None = None, with_dp: bool = False,
              eval_fn=None, dp_eps: float | None = None, batch: int | None = None) -> TrainParts:
    """Fresh toy model (seeded), loader and criterion for ``cfg``."""
    torch.manual_seed(0)
    model = ToyDetector(text_dim=text_dim, with_dp=with_dp)
    ds = ToyDataset(n)
    loader = make_loader(ds, batch or cfg.batch, toy_collate, workers=cfg.workers, seed=cfg.seed)
    table = torch.randn(3, text_dim) if text_dim else None
    meta = {"arch": "toy", "model_config": {"nc": 3}, "vocabulary": ["a", "b", "c"],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate("abc")]}
    return TrainParts(model=model, criterion=toy_criterion, loader=loader, text_table=table, eval_fn=eval_fn,
                      meta=meta, expert_lr_ratio=0.1,
                      model_hooks=[DPTerminationHook(dp_eps)] if dp_eps is not None else [])


def with_epochs(cfg: TrainConfig, epochs: int) -> TrainConfig:
    return replace(cfg, epochs=epochs)


def ddp_worker(rank: int, world: int, tmp: Path, port: int) -> None:
    """One rank of the 2-process gloo test: trains into ``tmp/rank<r>`` and saves what the test compares."""
    import os

    from rtvp.training.distributed import barrier, cleanup_distributed, init_distributed
    from rtvp.training.runner import fit, per_rank_batch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    try:
        cfg = toy_cfg(tmp / f"rank{rank}", epochs=2, batch=4, val_period=1)
        parts = toy_parts(cfg, n=10, batch=per_rank_batch(cfg), eval_fn=lambda m: {"AP": 0.5 + rank})
        parts.model.expert[0].weight.data.add_(rank)  # DDP must broadcast rank 0's initial weights
        trainer = fit(cfg, parts)
        parts.loader.sampler.set_epoch(0)
        params = lambda m: {n: p.detach().clone() for n, p in m.named_parameters()}  # noqa: E731
        torch.save({"model": params(trainer.bare_model), "ema": params(trainer.ema.module),
                    "losses": trainer.last_losses, "metrics": trainer.metrics, "world": info.world_size,
                    "indices": list(parts.loader.sampler), "steps": trainer.step}, tmp / f"out{rank}.pt")
        barrier()  # no rank tears gloo down while the other still has work in flight (SIGABRT seen once)
    finally:
        cleanup_distributed()


@pytest.fixture(autouse=True)
def single_thread():
    """Toy sizes: one torch thread (a second one only spins on a shared machine). Import into a test module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

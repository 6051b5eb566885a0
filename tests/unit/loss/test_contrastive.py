from __future__ import annotations

import torch
import torch.nn.functional as F

from rtvp.loss import info_nce, masked_bce_with_logits


def test_info_nce_matches_per_cell_cross_entropy():
    g = torch.Generator().manual_seed(0)
    emb, text = torch.randn(2, 6, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    fg = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 0, 0, 1, 0, 0]], dtype=torch.bool)
    labels = torch.tensor([[0, -1, 2, -1, -1, 1], [-1, -1, -1, 2, -1, -1]])
    valid = torch.tensor([True, True, True, False])
    tau = 0.1
    got = info_nce(emb, text, fg, labels, valid, tau)
    terms = []
    for b, a in fg.nonzero().tolist():  # reference: one cell at a time
        sim = F.normalize(emb[b, a], dim=0) @ F.normalize(text[b, :3], dim=1).T / tau
        terms.append(F.cross_entropy(sim[None], labels[b, a][None]))
    torch.testing.assert_close(got, torch.stack(terms).mean())


def test_info_nce_shared_text_and_no_positives():
    emb = torch.randn(2, 3, 4, requires_grad=True)
    text = torch.eye(4)[:3]  # (K, D) shared by the batch
    fg = torch.zeros(2, 3, dtype=torch.bool)
    loss = info_nce(emb, text, fg, torch.full((2, 3), -1))
    assert loss == 0
    loss.backward()
    assert emb.grad is not None and (emb.grad == 0).all()
    # perfectly aligned embeddings with a small temperature give ~0 loss
    fg[0, 0] = True
    emb2 = torch.zeros(2, 3, 4)
    emb2[0, 0] = text[1]
    assert info_nce(emb2, text, fg, torch.tensor([[1, -1, -1], [-1, -1, -1]]), temperature=0.01) < 1e-6


def test_masked_bce_drops_padded_slots():
    logits = torch.randn(1, 2, 3, requires_grad=True)
    targets = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.5, 0.0]]])
    valid = torch.tensor([True, True, False])
    loss = masked_bce_with_logits(logits, targets, valid)
    ref = F.binary_cross_entropy_with_logits(logits[..., :2], targets[..., :2], reduction="sum")
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert (logits.grad[..., 2] == 0).all()
    torch.testing.assert_close(masked_bce_with_logits(logits, targets, None),
                               F.binary_cross_entropy_with_logits(logits, targets, reduction="sum"))

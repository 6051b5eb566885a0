"""Classification losses on region-text similarity: masked BCE on the logits and InfoNCE over the vocabulary."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["info_nce", "masked_bce_with_logits"]


def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None
                           ) -> torch.Tensor:
    """Summed BCE-with-logits over the valid vocabulary slots only.

    Padded slots are dropped by indexing (not by multiplying with 0), so they receive exactly zero gradient even
    when the model fills them with ``-inf``.

    Args:
        logits: ``(B, A, K)`` raw logits.
        targets: ``(B, A, K)`` soft targets in ``[0, 1]``.
        valid: ``(K,)`` bool, True for real vocabulary slots; ``None`` means all slots are valid.

    Returns:
        Scalar sum of the element-wise losses (normalise by the caller).
    """
    if valid is not None and not bool(valid.all()):
        idx = valid.nonzero().squeeze(1)
        logits, targets = logits.index_select(-1, idx), targets.index_select(-1, idx)
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="sum")


def _per_image_padded(values: torch.Tensor, fg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the positive rows of ``values (B, A, D)`` into ``(B, P, D)`` (P = max positives per image) + mask."""
    b = fg.shape[0]
    counts = fg.sum(1)
    p = int(counts.max()) if counts.numel() else 0
    rank = fg.long().cumsum(1) - 1  # position of each positive within its image
    bi, ai = fg.nonzero(as_tuple=True)
    out = values.new_zeros(b, p, values.shape[-1])
    out = out.index_put((bi, rank[bi, ai]), values[bi, ai])
    mask = torch.arange(p, device=fg.device)[None] < counts[:, None]
    return out, mask


def info_nce(embeddings: torch.Tensor, text: torch.Tensor, fg_mask: torch.Tensor, labels: torch.Tensor,
             valid: torch.Tensor | None = None, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE over the vocabulary on positive cells: ``CE(cos(e, T_k) / tau, assigned label)``.

    Only the positive anchors are compared with the text (``(B, P, K)`` similarities, P = max positives per
    image), so the cost does not grow with the number of anchors.

    Args:
        embeddings: ``(B, A, D)`` region embeddings (re-normalised here).
        text: ``(B, K, D)`` or ``(K, D)`` text embeddings (re-normalised here).
        fg_mask: ``(B, A)`` bool, positive anchors.
        labels: ``(B, A)`` assigned vocabulary index (read on positives only).
        valid: ``(K,)`` bool, real vocabulary slots; padded slots are excluded from the softmax.
        temperature: ``tau`` > 0.

    Returns:
        Scalar mean loss over the positives (0, still connected to the graph, when there is none).
    """
    b, k = fg_mask.shape[0], text.shape[-2]
    e_pos, pmask = _per_image_padded(embeddings, fg_mask)  # (B, P, D), (B, P); normalise positives only
    e_pos = F.normalize(e_pos.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1).expand(b, k, -1)
    sim = torch.bmm(e_pos, t.transpose(1, 2)) / temperature  # (B, P, K)
    if valid is not None:
        sim = sim.masked_fill(~valid.bool()[None, None], float("-inf"))
    # rows of sim[pmask] and labels[fg_mask] share the same (image-major, anchor-ascending) order
    ce = F.cross_entropy(sim[pmask], labels[fg_mask].long(), reduction="none")  # (P_total,)
    return ce.sum() / max(ce.numel(), 1)

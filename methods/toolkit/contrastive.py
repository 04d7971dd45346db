"""Contrastive losses on projected features, written once for the methods that add one to their
training (UNICON's SimCLR term on the unlabelled samples' two strong views)."""

from __future__ import annotations

import torch


def simclr_loss(f1: torch.Tensor, f2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR) over two views: UNICON's `SupConLoss` with no labels, contrast mode
    'all' and base temperature = temperature (nazmul-karim170/UNICON `Contrastive_loss.py`
    l.12-103). Each of the 2B anchors (rows of [f1; f2], L2-normalised by the caller) is scored
    against the 2B - 1 others at temperature `temperature`, its one positive the same sample's
    other view; the loss is the mean over anchors of -log softmax at the positive. As there, the
    dot products' row maximum is subtracted first and +inf entries become 1."""
    features = torch.cat([f1, f2])
    size = len(f1)
    logits = features @ features.T / temperature
    logits = logits.masked_fill(logits == float("inf"), 1.0)
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    logits = logits.masked_fill(logits == float("inf"), 1.0)
    keep = ~torch.eye(2 * size, dtype=torch.bool, device=features.device)
    log_prob = logits - torch.log((torch.exp(logits) * keep).sum(dim=1, keepdim=True))
    log_prob = log_prob.masked_fill(log_prob == float("inf"), 1.0)
    positive = torch.arange(2 * size, device=features.device).roll(size)
    return -log_prob[torch.arange(2 * size, device=features.device), positive].mean()

"""Bootstrapping (Reed et al., ICLR workshop 2015): train towards a mix of the label and the
network's own prediction, so a confident prediction can outvote a wrong label."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from nlbench.methods._patrini import PatriniRecipe
from nlbench.methods.api import Choice, SingleNetwork, register
from nlbench.methods.api.search import Distribution

BETA = {"soft": 0.95, "hard": 0.8}
"""The paper's beta per variant (its Section 4 / Table 1 settings)."""


def bootstrap_loss(
    probs: torch.Tensor, labels: torch.Tensor, variant: str, beta: float, eps: float = 1e-7
) -> torch.Tensor:
    """Mean over the batch of -sum_k [beta e_yk + (1 - beta) z_k] log p_k.

    p is the prediction renormalised and clipped to [eps, 1 - eps] (Keras' epsilon); z = p for
    `soft`, the one-hot of argmax p for `hard`. As in the reimplementation the tables of Patrini
    et al. ran (giorgiop/loss-correction `loss.py`), gradients flow through the soft target too,
    so the soft variant adds an entropy-minimising term.
    """
    p = (probs / probs.sum(dim=1, keepdim=True)).clamp(eps, 1.0 - eps)
    y = F.one_hot(labels, p.shape[1]).to(p.dtype)
    z = p if variant == "soft" else F.one_hot(p.argmax(dim=1), p.shape[1]).to(p.dtype)
    return -((beta * y + (1.0 - beta) * z) * p.log()).sum(dim=1).mean()


@register("bootstrap")
class Bootstrap(SingleNetwork):
    """Bootstrapping, `variant: soft` (beta 0.95, default) or `variant: hard` (beta 0.8).

    The paper has no code and no CIFAR experiment; its CIFAR numbers come from Patrini et al.
    (CVPR 2017), whose Keras reimplementation this follows (`loss.py`: `boot_soft`, `boot_hard`)
    and whose recipe it takes (`_patrini.PatriniRecipe`).
    """

    class HParams(PatriniRecipe):
        variant: Literal["soft", "hard"] = "soft"
        beta: float | None = Field(None, ge=0, le=1)
        """None: the paper's beta for the variant (0.95 soft, 0.8 hard)."""
        search_space: ClassVar[dict[str, Distribution]] = {"beta": Choice((0.8, 0.9, 0.95))}

        @model_validator(mode="after")
        def _paper_beta(self):
            if self.beta is None:
                self.beta = BETA[self.variant]
            return self

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        probs = logits.float().softmax(dim=1)
        return bootstrap_loss(probs, labels, self.hp.variant, self.hp.beta)

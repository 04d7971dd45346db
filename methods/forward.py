"""Forward loss correction (Patrini et al., CVPR 2017): estimate the noise transition matrix T
from a first network's predictions, then train a fresh network whose predictions, passed through
T, must explain the noisy labels."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from nlbench.methods._patrini import PatriniRecipe
from nlbench.methods.api import (
    Choice,
    Diagnostics,
    MethodContext,
    Stage,
    StagedNetworks,
    register,
)
from nlbench.methods.api.search import Distribution


def estimate_transition(
    probs: np.ndarray, filter_outlier: bool, percentile: float = 97.0
) -> np.ndarray:
    """T_hat[i, :] = p(x_i*), x_i* the anchor of class i, rows then normalised to sum to 1.

    The anchor of class i is the sample the first network thinks most likely of class i:
    argmax_x p(i | x), or, with `filter_outlier`, the argmax after zeroing every entry of column i
    at or above its `percentile`-th percentile (numpy's 'higher' interpolation). As in the
    official estimator (giorgiop/loss-correction `noise.py`, called from `experiment.py` with
    row normalisation), the zeroing happens in place on the one prediction matrix, so the rows
    read for later classes see the entries zeroed for earlier ones.
    """
    eta = np.array(probs, dtype=np.float64)
    classes = eta.shape[1]
    t_hat = np.empty((classes, classes))
    for i in range(classes):
        column = eta[:, i]  # a view: zeroing it edits eta, as the official code does
        if filter_outlier:
            column[column >= np.percentile(column, percentile, method="higher")] = 0.0
        t_hat[i] = eta[int(np.argmax(column))]
    return t_hat / t_hat.sum(axis=1, keepdims=True)


def forward_loss(
    probs: torch.Tensor, labels: torch.Tensor, transition: torch.Tensor, eps: float = 1e-7
) -> torch.Tensor:
    """Mean over the batch of -log (p^T T)_y: p renormalised and clipped to [eps, 1 - eps]
    (Keras' epsilon, `loss.py` `robust('forward')`), the product not clipped again."""
    p = (probs / probs.sum(dim=1, keepdim=True)).clamp(eps, 1.0 - eps)
    return -(p @ transition).log().gather(1, labels[:, None]).mean()


@register("forward")
class ForwardCorrection(StagedNetworks):
    """Forward correction in two stages, each `epochs / 2` long by default.

    Stage `estimate`: a network trained with CE on the noisy labels (the recipe below); at its
    end its softmax on every un-augmented training image gives T_hat (`estimate_transition`,
    97th-percentile outlier filter on, as `experiment.py` sets it for every dataset but
    CIFAR-100). Stage `correct`: a fresh network, same recipe and schedule restarted, trained with
    `forward_loss` through T_hat. `true_transition: true` skips the first stage and uses the
    realised T of the noise: an oracle (the paper's "forward T" rows), labelled so by its name.

    The estimating stage's epochs are interim: no selection rule scores forward correction by
    them. Departure: the official code keeps the first stage's checkpoint with the lowest loss on
    a held-out 10 % of the noisy training set; here the first stage's last epoch estimates T and
    the training set (without any suite-level noisy validation split) trains both stages.
    """

    scored_network: str = "the corrected network (the estimating network during its stage)"
    epoch_pool = False  # its estimate of T is a pass over the whole training set

    class HParams(PatriniRecipe):
        epochs: int | None = Field(None, ge=1)
        """Both stages together; None = 240 (two 120-epoch stages), 120 with the true T."""
        estimate_epochs: int | None = Field(None, ge=0)
        """Length of the estimation stage; None = half of `epochs` (0 with the true T)."""
        true_transition: bool = False
        filter_outlier: bool = True
        percentile: float = Field(97.0, gt=0, le=100)
        search_space: ClassVar[dict[str, Distribution]] = {
            "percentile": Choice((90.0, 95.0, 97.0, 99.0, 100.0))
        }

        @model_validator(mode="after")
        def _stages(self):
            if self.epochs is None:
                self.epochs = 120 if self.true_transition else 240
            if self.estimate_epochs is None:
                self.estimate_epochs = 0 if self.true_transition else self.epochs // 2
            if self.true_transition and self.estimate_epochs:
                raise ValueError("true_transition needs no estimation stage: estimate_epochs 0")
            if not self.true_transition and not 0 < self.estimate_epochs < self.epochs:
                raise ValueError(
                    f"estimate_epochs must be between 1 and epochs - 1 ({self.epochs - 1}): one "
                    "stage estimates T, the other trains through it"
                )
            return self

    @classmethod
    def uses_oracle_transition(cls, hp: HParams) -> bool:
        return hp.true_transition

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        corrected = self.build_network()  # built first, as before stages were a part of the API
        if hp.estimate_epochs:
            self.add_stage("estimate", hp.estimate_epochs, interim=True)
        self.add_stage("correct", hp.epochs - hp.estimate_epochs, net=corrected)
        self.transition: torch.Tensor | None = (
            ctx.oracle_transition.to(ctx.device).float() if hp.true_transition else None
        )

    def finish_stage(self, stage: Stage) -> None:
        """The estimating network is done: T_hat from its softmax on every un-augmented
        training image."""
        probs = self.predict_training_set(lambda x: stage.net(x).float().softmax(dim=1),
                                          net=stage.net)  # fmt: skip
        t_hat = estimate_transition(probs.cpu().numpy(), self.hp.filter_outlier, self.hp.percentile)
        self.transition = torch.from_numpy(t_hat).float().to(self.ctx.device)

    def stage_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE while estimating; through T_hat after (p @ T in fp32, not under autocast)."""
        if self.stage.name == "estimate":
            return F.cross_entropy(logits.float(), labels)
        return forward_loss(logits.float().softmax(dim=1), labels, self.transition)

    def diagnostics(self) -> Diagnostics | None:
        return None if self.transition is None else Diagnostics(transition=self.transition)

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "transition": self.transition}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.transition = state.get("transition")

"""Confident Learning (Northcutt, Jiang & Chuang, JAIR 2021) through `cleanlab`: find the label
issues from out-of-sample predicted probabilities, drop them, retrain on the rest."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from cleanlab.count import estimate_py_and_noise_matrices_from_probabilities
from cleanlab.filter import find_label_issues
from pydantic import Field, model_validator
from sklearn.model_selection import StratifiedKFold

from nlbench.methods.api import (
    Choice,
    Diagnostics,
    MethodContext,
    SingleNetworkHParams,
    Stage,
    StagedNetworks,
    register,
)
from nlbench.methods.api.search import Distribution

FilterBy = Literal[
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
]


def label_issues(labels: np.ndarray, pred_probs: np.ndarray, filter_by: str) -> np.ndarray:
    """cleanlab's `filter.find_label_issues` (a bool mask, True = issue) with the given rule;
    one process, so a run stays reproducible and does not fork inside a worker."""
    return find_label_issues(labels, pred_probs, filter_by=filter_by, n_jobs=1)


def estimated_transition(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """cleanlab's noise matrix P(given label i | true label j), transposed to nlbench's
    T[true, noisy] convention."""
    _, noise_matrix, _, _ = estimate_py_and_noise_matrices_from_probabilities(labels, pred_probs)
    return noise_matrix.T


@register("confident_learning")
class ConfidentLearning(StagedNetworks):
    """Confident Learning: K-fold out-of-sample probabilities, `cleanlab` prunes, CE retrains.

    Stages, each `epochs / (folds + 1)` long (the last one takes the remainder): fold k trains a
    fresh network with the CE recipe on the other folds (stratified by noisy label, shuffled
    with the run's seed, as cleanlab's own `estimate_cv_predicted_probabilities` splits) and then
    predicts its own fold (on `fold_view`, see Inputs); once every fold has its probabilities,
    `cleanlab.filter.find_label_issues` with `filter_by` (the paper's `prune_by_noise_rate` by
    default) flags the issues, and a last fresh network trains with the CE recipe on the samples
    kept. The CE recipe is SingleNetwork's (PreAct ResNet-18, SGD 0.02, cosine). All confident-joint
    arithmetic is cleanlab's.

    Inputs: its CE recipe's, so those of the protocol it runs under (the DivideMix suites set
    DivideMix's constants). The paper's CIFAR-10 code
    (cgnorthcutt/confidentlearning-reproduce@2f31556 `cifar10/cifar10_train_crossval.py`)
    normalises with (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010) after RandomCrop(32,
    padding=4) + flip (l.324-333), drops the last partial training batch (l.403-411) as the engine
    does, scores the test set whole (l.388-395, l.413-417), and predicts each held-out fold through
    a copy of the training dataset, so through its random crop + flip (l.357-359, l.482-486):
    `fold_view: weak` (the default) does the same, `none` predicts the un-augmented images.

    Diagnostics from the pruning on: the flagged samples scored as noise detection, the kept ones
    as a selection, and cleanlab's estimated noise matrix as T (heat-map in the report).
    """

    scored_network: str = "the network retrained on the kept samples (a fold's network before)"
    epoch_pool = False  # its folds partition the whole training set

    class HParams(SingleNetworkHParams):
        epochs: int = Field(1800, ge=2)
        """All stages together: folds + 1 networks of 300 epochs by default."""
        folds: int = Field(5, ge=2)
        filter_by: FilterBy = "prune_by_noise_rate"
        fold_view: Literal["weak", "none"] = "weak"
        """The view each fold network predicts its held-out fold on: the official's training
        augmentation (`weak`), or none."""
        search_space: ClassVar[dict[str, Distribution]] = {
            "filter_by": Choice(("prune_by_noise_rate", "prune_by_class", "both"))
        }

        @model_validator(mode="after")
        def _a_stage_each(self):
            if self.epochs < self.folds + 1:
                raise ValueError(
                    f"epochs must be at least folds + 1 = {self.folds + 1}: one stage per fold "
                    "network and one for the network retrained on the kept samples"
                )
            return self

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        stage_epochs = hp.epochs // (hp.folds + 1)
        retrained = self.build_network()  # built first, as before stages were a part of the API
        for k in range(hp.folds):
            self.add_stage(f"fold_{k + 1}", stage_epochs, interim=True)
        self.add_stage("retrain", hp.epochs - hp.folds * stage_epochs, net=retrained)
        labels = ctx.noisy_labels.cpu().numpy()
        split = StratifiedKFold(hp.folds, shuffle=True, random_state=int(ctx.rng.integers(2**31)))
        self.fold = torch.empty(ctx.num_train, dtype=torch.long)
        for k, (_, held_out) in enumerate(split.split(np.zeros(len(labels)), labels)):
            self.fold[held_out] = k
        self.fold = self.fold.to(ctx.device)
        self.pred_probs = torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device)
        self.keep: torch.Tensor | None = None
        self.transition: torch.Tensor | None = None

    def stage_samples(self, stage: Stage) -> torch.Tensor:
        """A fold network trains on every other fold; the last network on what cleanlab kept."""
        if self.current == self.hp.folds:
            return self.keep.nonzero().squeeze(1)
        return (self.fold != self.current).nonzero().squeeze(1)

    @torch.no_grad()
    def finish_stage(self, stage: Stage) -> None:
        """A fold's network is done: it predicts its held-out fold; after the last fold,
        cleanlab flags the issues."""
        probs = self.predict_training_set(lambda x: stage.net(x).float().softmax(dim=1),
                                          view=self.hp.fold_view, net=stage.net)  # fmt: skip
        held_out = self.fold == self.current
        self.pred_probs[held_out] = probs[held_out]
        if self.current == self.hp.folds - 1:
            self._prune()

    def _prune(self) -> None:
        labels = self.ctx.noisy_labels.cpu().numpy()
        probs = self.pred_probs.cpu().numpy()
        issues = label_issues(labels, probs, self.hp.filter_by)
        self.keep = torch.from_numpy(~issues).to(self.ctx.device)
        if not self.keep.any():
            raise ValueError(
                "cleanlab flagged every training sample; nothing is left to retrain on"
            )
        self.transition = torch.from_numpy(estimated_transition(labels, probs)).float()

    def stage_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels)

    def diagnostics(self) -> Diagnostics | None:
        if self.keep is None:
            return None
        return Diagnostics(selected=self.keep, flagged=~self.keep, transition=self.transition)

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "fold": self.fold, "pred_probs": self.pred_probs,
                "keep": self.keep, "transition": self.transition}  # fmt: skip

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.fold, self.pred_probs = state["fold"], state["pred_probs"]
        self.keep, self.transition = state["keep"], state["transition"]

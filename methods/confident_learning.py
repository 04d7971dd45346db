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
    Batch,
    Choice,
    Diagnostics,
    EpochPlan,
    MethodContext,
    SingleNetwork,
    SingleNetworkHParams,
    Stream,
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
class ConfidentLearning(SingleNetwork):
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
        self.stage_epochs = hp.epochs // (hp.folds + 1)
        final_epochs = hp.epochs - hp.folds * self.stage_epochs
        # the base's network is the retrained one; every stage gets its own optimiser and schedule
        self.nets = [self.build_network() for _ in range(hp.folds)] + [self.net]
        del self.net, self.optimizer, self.schedule
        self.optimizers, self.schedules = [], []
        for k, net in enumerate(self.nets):
            optimizer, schedule = self.optimise(
                net, final_epochs if k == hp.folds else self.stage_epochs
            )
            self.optimizers.append(optimizer)
            self.schedules.append(schedule)
        labels = ctx.noisy_labels.cpu().numpy()
        split = StratifiedKFold(hp.folds, shuffle=True, random_state=int(ctx.rng.integers(2**31)))
        self.fold = torch.empty(ctx.num_train, dtype=torch.long)
        for k, (_, held_out) in enumerate(split.split(np.zeros(len(labels)), labels)):
            self.fold[held_out] = k
        self.fold = self.fold.to(ctx.device)
        self.pred_probs = torch.zeros(ctx.num_train, ctx.num_classes, device=ctx.device)
        self.keep: torch.Tensor | None = None
        self.transition: torch.Tensor | None = None
        self.stage = 0

    def begin_epoch(self, epoch: int) -> EpochPlan:
        stage = min(epoch // self.stage_epochs, self.hp.folds)
        while self.stage < stage:  # a fold's network is done: predict its held-out fold
            self._predict_fold(self.stage)
            self.stage += 1
        if stage == self.hp.folds and self.keep is None:
            self._prune()
        ids = (
            self.keep.nonzero().squeeze(1)
            if stage == self.hp.folds
            else (self.fold != stage).nonzero().squeeze(1)
        )
        stream = Stream(ids, self.ctx.noisy_labels, views=(self.hp.view,),
                        batch_size=self.hp.batch_size)  # fmt: skip
        phase = "retrain" if stage == self.hp.folds else f"fold_{stage + 1}"
        return EpochPlan(streams={"all": stream}, phase=phase, interim=stage < self.hp.folds)

    @torch.no_grad()
    def _predict_fold(self, k: int) -> None:
        net = self.nets[k]
        net.eval()
        probs = self.ctx.features(lambda x: net(x).float().softmax(dim=1), view=self.hp.fold_view)
        net.train()
        held_out = self.fold == k
        self.pred_probs[held_out] = probs[held_out]

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

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        part = batch["all"]
        net = self.nets[self.stage]
        with self.autocast():
            loss = self.loss(net(part.views[0]), part.labels, part.indices)
        self.step(loss, self.optimizers[self.stage], self.hp.clip_norm)
        return {"loss": loss.detach()}

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor
    ) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.nets[self.stage](images)

    def end_epoch(self, epoch: int) -> None:
        self.schedules[self.stage].step()

    def diagnostics(self) -> Diagnostics | None:
        if self.keep is None:
            return None
        return Diagnostics(selected=self.keep, flagged=~self.keep, transition=self.transition)

    def extra_state(self) -> dict[str, Any]:
        return {"fold": self.fold, "pred_probs": self.pred_probs, "keep": self.keep,
                "transition": self.transition, "stage": self.stage}  # fmt: skip

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.fold, self.pred_probs = state["fold"], state["pred_probs"]
        self.keep, self.transition, self.stage = state["keep"], state["transition"], state["stage"]

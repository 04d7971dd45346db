"""UNICON (Karim et al., CVPR 2022): DivideMix's two networks and MixMatch, with a class-uniform
selection by the Jensen-Shannon divergence between the networks' prediction and the given label,
and a SimCLR term on the unlabelled samples' strong views."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nlbench.methods.api import (
    Batch,
    Choice,
    Diagnostics,
    EpochPlan,
    Method,
    MethodContext,
    MethodHParams,
    Stream,
    StreamBatch,
    register,
)
from nlbench.methods.api.search import Distribution
from nlbench.methods.toolkit.contrastive import simclr_loss
from nlbench.methods.toolkit.mixing import (
    co_guess,
    linear_rampup,
    mix,
    mix_pairing,
    mixmatch_loss,
    mixup_lambda,
    refine_labels,
    warmup_loss,
)
from nlbench.methods.toolkit.optim import make_optimizer, make_schedule

VIEWS = ("weak", "weak", "strong", "strong")
"""Each sample's four views, labelled or not (`dataloader_cifar.py` l.172-190): two weak ones for
the targets, two strong ones for the mixed batch and the contrastive term."""


def jensen_shannon(prob: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """JSD(p, y) per row in nats, with UNICON's smoothing (`Train_cifar.py` l.278-288):
    kl(p, q) = sum p log((p + 1e-10) / (q + 1e-10)), m = (p + y) / 2; so 0 <= d <= ln 2."""

    def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (p * ((p + 1e-10) / (q + 1e-10)).log()).sum(dim=1)

    m = (prob + onehot) / 2
    return 0.5 * kl(prob, m) + 0.5 * kl(onehot, m)


def selection_ratio(jsd: torch.Tensor, d_u: float, tau: float) -> float:
    """The share of samples below the threshold (l.402-406): the mean JSD, or, when the mean
    exceeds d_u, the mean moved towards the minimum by (mean - min) / tau. The official writes
    that branch with a typo (`arg.tau`) it never reaches: the mean never exceeds ln 2 < 0.7."""
    threshold = jsd.mean()
    if threshold.item() > d_u:
        threshold = threshold - (threshold - jsd.min()) / tau
    return (jsd < threshold).sum().item() / len(jsd)


def uniform_selection(
    jsd: np.ndarray, labels: np.ndarray, num_classes: int, ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """(labelled ids, their refinement weights) as the official loader builds them
    (`dataloader_cifar.py` l.138-161): int(ratio N) slots, each class's int(ratio N / C) samples of
    lowest JSD among those labelled with it (numpy's default argsort). A class with fewer samples
    gives all it has, except a class of one, whose sample fills every slot of its class (numpy
    broadcasts it). Slots left over hold sample 0, which is thereby labelled several times. The
    weight w = 1 - d, or 1 where d < 0.5."""
    slots = np.zeros(int(ratio * len(jsd)), dtype=np.int64)
    per_class, filled = int(ratio * len(jsd) / num_classes), 0
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        ranked = members[np.argsort(jsd[members])[:per_class]]
        if len(ranked) in (per_class, 1) and per_class > 0:
            slots[filled : filled + per_class] = ranked
            filled += per_class
        elif len(members) < per_class:
            slots[filled : filled + len(members)] = members
            filled += len(members)
    weights = np.where(jsd < 0.5, 0.0, jsd)[slots]
    return slots, (1 - weights).astype(np.float32)


@register("unicon")
class UNICON(Method):
    """UNICON as nazmul-karim170/UNICON `Train_cifar.py` runs it on CIFAR (commit in SOURCES.md).

    Warm-up (10 epochs; CIFAR-100 30, l.338-341): each network in turn, one pass of CE in batches
    of 128 (plus the negative-entropy penalty under class-dependent noise), as DivideMix's. Then
    every epoch, for network 1 and then network 2 (l.402-421): both networks score every training
    image without augmentation in batches of 100 by the JSD between their mean softmax and the
    given label (`jensen_shannon`); the share below the mean JSD sets the selection ratio SR
    (`selection_ratio`); the class-uniform selection (`uniform_selection`) labels int(SR N)
    samples, the rest are unlabelled, batches of 64 labelled and int(64 / (2 SR)) unlabelled;
    network 2's split is made after network 1 has trained (the pass's `then`). A step
    (l.77-186): co-guessing of both networks on the unlabelled weak views, co-refinement with the
    trained network and w, sharpening T 0.5, mixup (lambda ~ Beta(4, 4), max(lambda, 1 - lambda))
    of the labelled and unlabelled strong views, soft CE on the labelled rows, squared error on
    the unlabelled ones weighted by lambda_u 30 ramped over 16 epochs, the uniform-prior
    penalty, and 0.025 x SimCLR (temperature 0.05) on the unlabelled strong views' projections
    (Linear(512, 128) + BatchNorm1d, L2-normalised; `toolkit.contrastive`). Two PreAct
    ResNet-18s, SGD lr 0.02, momentum 0.9, weight decay 5e-4, cosine with T_max 280 down to 2e-4
    (rising again after epoch 280) over 351 epochs, stepped every epoch; the test score is the
    argmax of the sum of both networks' logits (l.247-266). One recipe for every setting: the
    code has no per-setting values.

    As the official does, the second JSD pass of an epoch leaves network 1 in train mode (its
    batch norm uses and updates batch statistics; the official never calls eval() there, l.291);
    `jsd_eval: true` scores both in eval mode.

    Inputs (`dataloader_cifar.py` l.222-300): weak = RandomCrop(32, padding 4) + flip; strong =
    the same + AutoAugment's CIFAR-10 policy (on CIFAR-100 too); ToTensor + Normalize with
    CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010), CIFAR-100 (0.507, 0.487, 0.441)
    / (0.267, 0.256, 0.276); the JSD pass and the test unaugmented. The labelled and unlabelled
    loaders drop their last batch, the warm-up loader keeps it.

    Departures: the warm-up trains len // 128 full batches (the official 391, keeping the last
    partial one); the mixup lambda comes from the run's numpy generator and the pairing from its
    torch one (the official: numpy's global and torch's global); the unlabelled stream draws its
    own permutations, where the official restarts its loader (the same distribution); an SR of 0,
    where the official divides by zero, gives unlabelled batches of 64; the warm-up's entropy
    penalty clamps p before its log, where the official's 0 log 0 turns a saturated softmax into
    NaN and ends the run (`toolkit.mixing.warmup_loss`).

    Diagnostics: the samples labelled for network 1, scored against the clean labels, and the
    rest as flagged noisy.
    """

    scored_network: str = "the sum of both networks' logits"

    class HParams(MethodHParams):
        epochs: int = Field(351, ge=1)
        network: str = "preact_resnet18"
        lr: float = Field(0.02, gt=0)
        momentum: float = Field(0.9, ge=0)
        weight_decay: float = Field(5e-4, ge=0)
        cosine_period: int = Field(280, ge=1)
        """The cosine's T_max (the official 280 of 351 epochs: the lr rises again after it)."""
        eta_min: float = Field(2e-4, ge=0)
        batch_size: int = Field(64, ge=1)
        warmup_batch_size: int = Field(128, ge=1)
        warm_up: int = Field(10, ge=0)
        lambda_u: float = Field(30.0, ge=0)
        lambda_c: float = Field(0.025, ge=0)
        temperature: float = Field(0.5, gt=0)
        alpha: float = Field(4.0, gt=0)
        d_u: float = Field(0.7, ge=0)
        tau: float = Field(5.0, gt=0)
        contrastive_temperature: float = Field(0.05, gt=0)
        projection_dim: int = Field(128, ge=1)
        jsd_batch_size: int = Field(100, ge=1)
        jsd_eval: bool = False
        strong_view: str = "strong"
        entropy_penalty: bool | None = None
        """The warm-up's negative-entropy penalty; None = on for class-dependent noise."""
        search_space: ClassVar[dict[str, Distribution]] = {
            "lambda_u": Choice((0.0, 30.0, 50.0)),
            "lambda_c": Choice((0.0, 0.025, 0.1)),
        }

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.nets = [self.build_network(), self.build_network()]
        self.heads = [
            nn.Sequential(nn.Linear(net.feature_dim, hp.projection_dim),
                          nn.BatchNorm1d(hp.projection_dim)).to(ctx.device)
            for net in self.nets
        ]  # fmt: skip
        self.optimizers = [
            make_optimizer([*net.parameters(), *head.parameters()], "sgd", hp.lr, hp.momentum,
                           hp.weight_decay)
            for net, head in zip(self.nets, self.heads)
        ]  # fmt: skip
        self.schedules = [
            make_schedule(opt, "cosine", hp.epochs, hp.eta_min / hp.lr, period=hp.cosine_period)
            for opt in self.optimizers
        ]
        self.weights = torch.ones(2, ctx.num_train, device=ctx.device)
        self.labelled = torch.zeros(2, ctx.num_train, dtype=torch.bool, device=ctx.device)
        self.num_iter = [1, 1]
        self._steps_done = [0, 0]
        self.epoch = 0
        penalty = hp.entropy_penalty
        self.entropy_penalty = bool(ctx.noise.class_dependent) if penalty is None else penalty

    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Two passes: the warm-up of network 1 then 2, or network 1's semi-supervised pass on
        the split made now and network 2's on the split made after it (`then`)."""
        self.epoch = epoch
        self._steps_done = [0, 0]
        if epoch < self.hp.warm_up:
            first, second = self._warmup_pass(0), self._warmup_pass(1)
            first.followed_by = second
            return first
        first = self._ssl_pass(0)
        first.then = lambda: self._ssl_pass(1)
        return first

    def _warmup_pass(self, k: int) -> EpochPlan:
        stream = Stream(self.ctx.train_indices, self.ctx.noisy_labels, views=("weak",),
                        batch_size=self.hp.warmup_batch_size)  # fmt: skip
        return EpochPlan(streams={"all": stream}, phase="warmup", tag=("warmup", k))

    def _ssl_pass(self, k: int) -> EpochPlan:
        """Network k's pass on the selection both networks make now (l.402-409, l.413-420)."""
        jsd = self._jsd(second=k == 1)
        ratio = selection_ratio(jsd, self.hp.d_u, self.hp.tau)
        noisy = self.ctx.noisy_labels
        slots, weights = uniform_selection(jsd.numpy(), noisy.cpu().numpy(),
                                           self.ctx.num_classes, ratio)  # fmt: skip
        labelled = torch.from_numpy(slots).to(noisy.device)
        self.weights[k, labelled] = torch.from_numpy(weights).to(self.weights)
        self.labelled[k] = False
        self.labelled[k, labelled] = True
        unlabelled = (~self.labelled[k]).nonzero().squeeze(1)
        if len(unlabelled) == 0:
            unlabelled = labelled
        if len(labelled) == 0:
            labelled = unlabelled
        self.num_iter[k] = len(slots) // self.hp.batch_size + 1
        unlabelled_batch = (
            int(self.hp.batch_size / (2 * ratio)) if ratio > 0 else self.hp.batch_size
        )
        return EpochPlan(
            streams={
                "labelled": Stream(labelled, noisy, self._views, batch_size=self.hp.batch_size),
                "unlabelled": Stream(
                    unlabelled, noisy, self._views, batch_size=max(1, unlabelled_batch)
                ),
            },  # fmt: skip
            tag=("ssl", k),
            length_from="labelled",
        )

    @property
    def _views(self) -> tuple[str, ...]:
        return (*VIEWS[:2], self.hp.strong_view, self.hp.strong_view)

    @torch.no_grad()
    def _jsd(self, second: bool) -> torch.Tensor:
        """Every training image's JSD (`Calculate_JSD`, l.291-311), in float32 on the CPU. The
        first pass of an epoch finds both networks in eval mode (the test of the epoch before
        left them there), the second network 1 in train mode (its pass just ended)."""
        first, peer = self.nets
        first.train(second and not self.hp.jsd_eval)
        peer.eval()

        def mean_softmax(images: torch.Tensor) -> torch.Tensor:
            return (peer(images).float().softmax(dim=1) + first(images).float().softmax(dim=1)) / 2

        prob = self.ctx.features(mean_softmax, view="none", batch_size=self.hp.jsd_batch_size)
        first.train()
        peer.train()
        onehot = F.one_hot(self.ctx.noisy_labels, self.ctx.num_classes).float()
        return jensen_shannon(prob.float(), onehot).cpu()

    def train_step(self, batch: Batch, tag: tuple[str, int]) -> dict[str, torch.Tensor]:
        kind, k = tag
        if kind == "warmup":
            part = batch["all"]
            with self.autocast():
                logits = self.nets[k](part.views[0]).float()
            loss = warmup_loss(logits, part.labels, self.entropy_penalty)
            self.step(loss, self.optimizers[k])
            return {f"warmup_loss_{k + 1}": loss.detach()}
        return self._ssl_step(k, batch["labelled"], batch["unlabelled"])

    def _ssl_step(self, k: int, lab: StreamBatch, unl: StreamBatch) -> dict[str, torch.Tensor]:
        net, head, peer, hp = self.nets[k], self.heads[k], self.nets[1 - k], self.hp
        net.train()
        peer.eval()
        x1, x2, x3, x4 = lab.views
        u1, u2, u3, u4 = unl.views
        onehot = F.one_hot(lab.labels, self.ctx.num_classes).float()
        with torch.no_grad(), self.autocast():
            targets_u = co_guess([n(v).float() for n in (net, peer) for v in (u1, u2)],
                                 hp.temperature)  # fmt: skip
            targets_x = refine_labels(net(x1).float(), net(x2).float(), onehot,
                                      self.weights[k, lab.indices], hp.temperature)  # fmt: skip
        with self.autocast():
            f1 = F.normalize(head(net.features(u3)).float(), dim=1)
            f2 = F.normalize(head(net.features(u4)).float(), dim=1)
        contrastive = simclr_loss(f1, f2, hp.contrastive_temperature)
        lam = mixup_lambda(self.ctx.rng, hp.alpha, at_least_half=True)
        inputs = torch.cat([x3, x4, u3, u4])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
        perm = mix_pairing(len(inputs), self.ctx.generator, inputs.device)
        step = self._steps_done[k]
        lamb = linear_rampup(self.epoch + step / self.num_iter[k], hp.warm_up, hp.lambda_u)
        with self.autocast():
            logits = net(mix(inputs, lam, perm)).float()
        semi, lx, lu = mixmatch_loss(logits, mix(targets, lam, perm), 2 * len(onehot), lamb)
        loss = semi + hp.lambda_c * contrastive
        self.step(loss, self.optimizers[k])
        self._steps_done[k] = step + 1
        peer.train()
        return {f"loss_x_{k + 1}": lx.detach(), f"loss_u_{k + 1}": lu.detach(),
                f"loss_c_{k + 1}": contrastive.detach()}  # fmt: skip

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.nets[0](images) + self.nets[1](images)

    def diagnostics(self) -> Diagnostics | None:
        if self.epoch < self.hp.warm_up:
            return None
        return Diagnostics(selected=self.labelled[0].clone(), flagged=~self.labelled[0])

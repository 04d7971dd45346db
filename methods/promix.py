"""ProMix (Xiao et al., IJCAI 2023): two networks, each training on its own class-wise small-loss
selection widened by matched high-confidence samples, with debiased (logit-adjusted) losses and
pseudo-labels and an auxiliary pseudo head; mixup and FMix on the selected samples."""

from __future__ import annotations

import math
from typing import Any, ClassVar

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
    register,
)
from nlbench.methods.api.search import Distribution
from nlbench.methods.toolkit.mixing import (
    fmix_mask,
    mix,
    mix_pairing,
    mixup_lambda,
    sharpen,
    soft_cross_entropy,
)
from nlbench.methods.toolkit.optim import make_optimizer, make_schedule


def class_wise_small_loss(losses: torch.Tensor, labels: torch.Tensor, num_classes: int,
                          rho: float) -> torch.Tensor:  # fmt: skip
    """CSS (Justherozen/ProMix `Train_promix.py` l.419-456): per class j with n_j > 0 samples,
    its max(min(ceil(N / C * rho), n_j), 1) smallest losses (torch.sort, ascending) are selected
    (1.0), the rest not (0.0); N / C is the average class size, not n_j. The official min-max
    normalises the losses first, which changes no ranking."""
    selected = torch.zeros(len(losses), dtype=torch.float64, device=losses.device)
    quota_all = math.ceil(len(losses) / num_classes * rho)
    for j in range(num_classes):
        members = (labels == j).nonzero().squeeze(1)
        if len(members) == 0:
            continue
        quota = max(min(quota_all, len(members)), 1)
        order = torch.sort(losses[members])[1][:quota]
        selected[members[order]] = 1.0
    return selected


def label_guessing(chosen: torch.Tensor, w_x: torch.Tensor, score1: torch.Tensor,
                   score2: torch.Tensor, match: torch.Tensor, tau: float,
                   threshold: float) -> torch.Tensor:  # fmt: skip
    """LGA (l.88-107): when fewer than `threshold` of the batch are chosen, add the samples both
    networks give the same argmax with confidence > tau each, at most int(B threshold) - |chosen|
    of them, those of highest mean confidence first. Returns the widened w_x."""
    widened = w_x.clone()
    size = len(w_x)
    if len(chosen) / size < threshold:
        candidates = ((score1 > tau) & (score2 > tau) & match).float() - w_x.squeeze(1) > 0
        where = candidates.nonzero().squeeze(1)
        room = int(size * threshold) - len(chosen)
        if candidates.sum() > room:
            drop = (-((score1 + score2) / 2)[where]).sort()[1][room:]
            candidates[where[drop]] = False
        widened[candidates] = 1
    return widened


@register("promix")
class ProMix(Method):
    """ProMix as Justherozen/ProMix `Train_promix.py` and `run.sh` run it on CIFAR (the commit in
    SOURCES.md).

    Warm-up (10 epochs; CIFAR-100 30): both networks, CE on the weak view, in one step (l.339-362;
    plus the negative entropy for class-dependent noise, of softmax(max(z, 1e-12)): the clamp is on
    the logits, l.458-462). Then every epoch each network selects for itself (no exchange):
    CSS on its un-augmented per-sample CE (`class_wise_small_loss`, rho 0.5; 0.7 at 20 %); and
    each step (l.123-329), for network k with class priors pi_k (selected) and pi_k' (others),
    both EMAs (momentum 0.9999) of the softmax of its primary head: MHCS adds the samples whose
    given label has plain softmax > tau (0.99; CIFAR-100 0.95); targets are the given label on
    the chosen samples and the argmax of softmax(z - d log pi_k) otherwise; from epoch
    `epochs - 250` LGA (`label_guessing`, threshold 0.9) adds agreed samples with that argmax.
    Losses per head (primary h, pseudo h_AP), on logits adjusted by + a log pi_k (a = d = 0.8;
    CIFAR-100 0.5): soft CE on the chosen weak views, w x (the same on the strong views + mixup
    of the chosen weak views (Beta(4, 4), max(l, 1 - l)) + FMix (Beta(1, 1), decay 3)); on h_AP
    also beta x soft CE of the others' weak and (x w) strong views against the sharpened (T 0.5)
    softmax(z - d log pi_k'), logits adjusted by pi_k'. w = min(e / 50, 1); beta = 0.1 min(e / 100,
    1) and 0 from epoch 100 (l.120, 254). One SGD step over both networks (lr 0.05, momentum 0.9,
    weight decay 5e-4, cosine to 5e-5 over 600, batch 256, 601 epochs). Two standard CIFAR
    ResNet-18s (`resnet18`, post-activation) with a second linear head each.

    Scored: network 1's pseudo head, the accuracy the official code writes (l.400-415); each
    network's pseudo head and the mean of the primary heads are scored too (`predict_each`).

    Inputs (`dataloader_cifarn.py` l.226-245): weak = flip + RandomCrop(32, padding 4) (CIFAR-100:
    crop, then flip); strong = RandomAugment(3 ops of 14) + Cutout before the weak steps; ToTensor
    + Normalize with CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.247, 0.243, 0.261), CIFAR-100 (0.507,
    0.487, 0.441) / (0.267, 0.256, 0.276); the training loader drops its last batch.

    Departures: the strong view is the engine's `strong` (the recipe's crop + flip and AutoAugment's
    CIFAR-10 policy), not RandomAugment + Cutout, which is not implemented; the mixup lambda and
    FMix's draws come from the run's numpy generator and the pairings from its torch one; FMix's
    mask is the image size (the official's fixed 32 x 32); a term over an empty set (no sample
    chosen, or none left out) is left out and its prior not updated, where the official's mean of
    nothing is NaN and ends the run; the warm-up trains len // 256 full batches (the official keeps
    the last partial one).

    Diagnostics: network 1's CSS selection of the epoch, scored against the clean labels, and the
    rest as flagged noisy.
    """

    scored_network: str = "network 1's pseudo head"

    class HParams(MethodHParams):
        epochs: int = Field(601, ge=1)
        network: str = "resnet18"
        lr: float = Field(0.05, gt=0)
        momentum: float = Field(0.9, ge=0)
        weight_decay: float = Field(5e-4, ge=0)
        cosine_period: int = Field(600, ge=1)
        eta_min_ratio: float = Field(1e-3, ge=0)
        batch_size: int = Field(256, ge=1)
        warm_up: int = Field(10, ge=0)
        rho: float = Field(0.5, gt=0, le=1)
        tau: float = Field(0.99, gt=0, lt=1)
        debias_output: float = Field(0.8, ge=0)
        debias_pl: float = Field(0.8, ge=0)
        temperature: float = Field(0.5, gt=0)
        alpha: float = Field(4.0, gt=0)
        fmix_alpha: float = Field(1.0, gt=0)
        fmix_decay: float = Field(3.0, gt=0)
        ramp: int = Field(50, ge=1)
        """`warmup_ep`: w ramps over it, beta over twice it and is 0 after."""
        lga_epochs: int = Field(250, ge=0)
        """`start_expand`: LGA runs in the epochs after epochs - 1 - lga_epochs."""
        lga_threshold: float = Field(0.9, gt=0, le=1)
        bias_momentum: float = Field(0.9999, ge=0, lt=1)
        strong_view: str = "strong"
        entropy_penalty: bool | None = None
        """The warm-up's negative-entropy penalty; None = on for class-dependent noise."""
        search_space: ClassVar[dict[str, Distribution]] = {
            "rho": Choice((0.5, 0.7)),
            "tau": Choice((0.95, 0.99)),
        }

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.nets = [self.build_network(), self.build_network()]
        self.pseudo_heads = [
            nn.Linear(net.feature_dim, ctx.num_classes).to(ctx.device) for net in self.nets
        ]
        params = [p for net, head in zip(self.nets, self.pseudo_heads)
                  for p in (*net.parameters(), *head.parameters())]  # fmt: skip
        self.optimizer = make_optimizer(params, "sgd", hp.lr, hp.momentum, hp.weight_decay)
        self.schedule = make_schedule(self.optimizer, "cosine", hp.epochs, hp.eta_min_ratio,
                                      period=hp.cosine_period)  # fmt: skip
        uniform = torch.full((ctx.num_classes,), 1 / ctx.num_classes, device=ctx.device)
        self.priors = torch.stack([uniform] * 4)
        """pi_1, pi_2 (chosen) and pi_1', pi_2' (the others): EMAs of the primary softmax."""
        self.selected = torch.zeros(2, ctx.num_train, dtype=torch.float64, device=ctx.device)
        self.epoch = 0
        penalty = hp.entropy_penalty
        self.entropy_penalty = bool(ctx.noise.class_dependent) if penalty is None else penalty

    def begin_epoch(self, epoch: int) -> EpochPlan:
        self.epoch = epoch
        warming = epoch < self.hp.warm_up
        if not warming:
            self._select()
        views = ("weak",) if warming else ("weak", self.hp.strong_view)
        stream = Stream(self.ctx.train_indices, self.ctx.noisy_labels, views=views,
                        batch_size=self.hp.batch_size)  # fmt: skip
        phase = "warmup" if warming else "train"
        return EpochPlan(streams={"all": stream}, phase=phase, tag=phase)

    @torch.no_grad()
    def _select(self) -> None:
        """CSS of each network on its un-augmented CE, in eval mode (l.419-456, 513-515)."""
        for k, net in enumerate(self.nets):
            logits = self.predict_training_set(net, net=net)
            losses = F.cross_entropy(logits, self.ctx.noisy_labels, reduction="none")
            self.selected[k] = class_wise_small_loss(losses, self.ctx.noisy_labels,
                                                     self.ctx.num_classes, self.hp.rho)  # fmt: skip

    def _heads(self, k: int, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.nets[k].features(images)
        return self.nets[k].classifier(features).float(), self.pseudo_heads[k](features).float()

    def train_step(self, batch: Batch, tag: str) -> dict[str, torch.Tensor]:
        part = batch["all"]
        if tag == "warmup":
            return self._warmup_step(part.views[0], part.labels)
        hp, epoch = self.hp, self.epoch
        w = min(epoch / hp.ramp, 1.0)
        beta = 0.1 * min(epoch / (2 * hp.ramp), 1.0) if hp.debias_pl else 1.0
        beta = 0.0 if epoch >= 2 * hp.ramp and beta < 1 else beta
        weak, strong = part.views
        onehot = F.one_hot(part.labels, self.ctx.num_classes).float()
        with self.autocast():
            outs = [(*self._heads(k, weak), *self._heads(k, strong)) for k in range(2)]
        px = [o[0].detach().softmax(dim=1) for o in outs]
        w_x = [self.selected[k, part.indices].float()[:, None] for k in range(2)]
        lga = epoch > hp.epochs - 1 - hp.lga_epochs
        if lga:  # both networks' plain confidences and whether they agree (l.192-194)
            (score1, top1), (score2, top2) = (p.max(dim=1) for p in px)
        splits, losses, total = [], {}, torch.zeros((), device=weak.device)
        for k in range(2):
            w_x[k][(onehot * px[k]).sum(dim=1) > hp.tau] = 1  # MHCS, l.176-178
            given = w_x[k].clone()  # the targets' weight: LGA's additions train on `pred` (l.182)
            if lga:
                chosen = (w_x[k] == 1).squeeze(1).nonzero().squeeze(1)
                w_x[k] = label_guessing(chosen, w_x[k], score1, score2, top1 == top2, hp.tau,
                                        hp.lga_threshold)  # fmt: skip
            chosen = (w_x[k] == 1).squeeze(1).nonzero().squeeze(1)
            others = (w_x[k] != 1).squeeze(1).nonzero().squeeze(1)
            splits.append((chosen, others))
            net_loss = self._network_loss(k, outs[k], weak, onehot, given, chosen, others, w, beta)
            losses[f"loss_{k + 1}"] = net_loss.detach()
            total = total + net_loss
        for k, (chosen, others) in enumerate(splits):  # l.321-325, after the loss is built: this
            # batch used the old priors
            for slot, rows in ((k, chosen), (k + 2, others)):
                if len(rows):
                    mean = px[k][rows].mean(dim=0)
                    self.priors[slot] = hp.bias_momentum * self.priors[slot] + (
                        1 - hp.bias_momentum) * mean  # fmt: skip
        if total.requires_grad:
            self.step(total, self.optimizer)
        return losses

    def _network_loss(self, k: int, outs: tuple[torch.Tensor, ...], weak: torch.Tensor,
                      onehot: torch.Tensor, given: torch.Tensor, chosen: torch.Tensor,
                      others: torch.Tensor, w: float, beta: float) -> torch.Tensor:  # fmt: skip
        """Network k's primary-head and pseudo-head losses (l.138-259; net 2: l.264-316): the
        given label where `given` (CSS + MHCS) is 1, the debiased argmax elsewhere; `chosen` and
        `others` after LGA."""
        hp = self.hp
        z_w, zph_w, z_s, zph_s = outs
        log_pi, log_pi_other = self.priors[k].log(), self.priors[k + 2].log()
        with torch.no_grad():
            pred = F.one_hot((z_w.detach() - hp.debias_pl * log_pi).softmax(dim=1).argmax(dim=1),
                             self.ctx.num_classes).float()  # fmt: skip
            targets = onehot * given + pred * (1 - given)
            unreliable = sharpen((z_w.detach() - hp.debias_pl * log_pi_other).softmax(dim=1),
                                 hp.temperature)  # fmt: skip
        adjust, adjust_other = hp.debias_output * log_pi, hp.debias_output * log_pi_other
        loss = torch.zeros((), device=weak.device)
        if len(chosen):
            target = targets[chosen]
            for head in (0, 1):
                z_weak = (z_w if head == 0 else zph_w)[chosen] + adjust
                z_strong = (z_s if head == 0 else zph_s)[chosen] + adjust
                mixing = self._mixup_terms(k, head, weak[chosen], target, adjust)
                loss = (
                    loss
                    + soft_cross_entropy(z_weak, target)
                    + w * (soft_cross_entropy(z_strong, target) + mixing)
                )
        if len(others) and beta:
            loss = loss + beta * (
                soft_cross_entropy(zph_w[others] + adjust_other, unreliable[others])
                + w * soft_cross_entropy(zph_s[others] + adjust_other, unreliable[others])
            )
        return loss

    def _mixup_terms(self, k: int, head: int, images: torch.Tensor, targets: torch.Tensor,
                     adjust: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Mixup then FMix of the chosen weak images on one head (l.204-237), each with its own
        draws and forward pass."""
        hp = self.hp
        lam = mixup_lambda(self.ctx.rng, hp.alpha, at_least_half=True)
        perm = mix_pairing(len(images), self.ctx.generator, images.device)
        with self.autocast():
            mixed = self._heads(k, mix(images, lam, perm))[head] + adjust
        loss_mix = soft_cross_entropy(mixed, mix(targets, lam, perm))
        fmix_lam, mask = fmix_mask(self.ctx.rng, hp.fmix_alpha, hp.fmix_decay, images.shape[-2:])
        mask_t = torch.from_numpy(mask).float().to(images.device)
        index = mix_pairing(len(images), self.ctx.generator, images.device)
        with self.autocast():
            cut = self._heads(k, mask_t * images + (1 - mask_t) * images[index])[head] + adjust
        hard = targets.argmax(dim=1)
        loss_fmix = (F.cross_entropy(cut, hard) * fmix_lam
                     + F.cross_entropy(cut, hard[index]) * (1 - fmix_lam))  # fmt: skip
        return loss_mix + loss_fmix

    def _warmup_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = torch.zeros((), device=images.device)
        for net in self.nets:
            with self.autocast():
                logits = net(images).float()
            loss = loss + F.cross_entropy(logits, labels)
            if self.entropy_penalty:
                p = logits.clamp(min=1e-12).softmax(dim=1)
                loss = loss + (p * p.log()).sum(dim=1).mean()
        self.step(loss, self.optimizer)
        return {"warmup_loss": loss.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self._heads(0, images)[1]

    def predict_each(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        (h1, ph1), (h2, ph2) = self._heads(0, images), self._heads(1, images)
        return {"net1_pseudo": ph1, "net2_pseudo": ph2, "primary_mean": (h1 + h2) / 2}

    def diagnostics(self) -> Diagnostics | None:
        if self.epoch < self.hp.warm_up:
            return None
        kept = self.selected[0] == 1
        return Diagnostics(selected=kept, flagged=~kept)

    def extra_state(self) -> dict[str, Any]:
        return {"priors": self.priors}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.priors.copy_(state["priors"])

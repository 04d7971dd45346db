"""DivideMix (Li, Socher & Hoi, ICLR 2020): two networks, each splitting the training set for the
other into a clean labelled part and an unlabelled part with a two-component GMM on per-sample
losses, then MixMatch on the split."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from sklearn.mixture import GaussianMixture

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


def normalised_losses(losses: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(l - min l) / (max l - min l) on the CPU in float32, as `eval_train` computes it (l.167-175:
    the losses are stored in a float32 `torch.zeros(50000)` and normalised in place there)."""
    values = torch.as_tensor(losses).detach().to("cpu", torch.float32)
    return (values - values.min()) / (values.max() - values.min()).clamp(min=1e-12)


def clean_probability(
    losses: torch.Tensor | np.ndarray, seed: int | None = None, normalise: bool = True
) -> np.ndarray:
    """P(clean) per sample (float64): the posterior of the low-mean component of a two-component
    GMM fitted to the float32 losses min-max normalised to [0, 1] (`Train_cifar.py` l.175-190:
    max_iter 10, tol 1e-2, reg_covar 5e-4). `normalise=False` fits the float32 values as given:
    the mean of several epochs' normalised losses, as the official code fits it (l.178-181).

    The fit and the posteriors run in float64 on the float32 values, as the official path ends
    up: it hands `fit` and `predict_proba` the float32 torch tensor, which the scikit-learn of its
    day (0.2x, `_check_X`) converted to float64 in both. A float32 NumPy array is fitted in
    float32, which moved posteriors by up to 2e-5 on 50,000 losses, enough to put one near
    p_threshold on its other side. `seed` fixes the k-means initialisation the official code
    leaves to numpy's global generator."""
    values = normalised_losses(losses) if normalise else torch.as_tensor(losses).float().cpu()
    column = values.numpy().astype(np.float64).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    gmm.fit(column)
    return gmm.predict_proba(column)[:, gmm.means_.argmin()]


@register("dividemix")
class DivideMix(Method):
    """DivideMix as LiJunnan1992/DivideMix `Train_cifar.py` runs it on CIFAR.

    Warm-up (10 epochs; CIFAR-100 suites set 30): each network in turn, one pass of CE over all
    samples in batches of 128, plus the negative-entropy penalty under asymmetric noise. Then every
    epoch: each network scores every training image without augmentation (per-sample CE against
    the noisy labels), the GMM gives clean probabilities (`clean_probability`; with
    `loss_history` 5, the mean of the last 5 epochs' normalised losses, as the official code does
    at 90 % noise), and each network trains one pass on the split its peer made: samples with
    p > p_threshold labelled (weight w_x = p), the rest unlabelled (cycled), batches of 64 and
    two weak views each, co-refinement, co-guessing, sharpening T 0.5, mixup with
    lambda ~ Beta(4, 4), lambda = max(lambda, 1 - lambda), lambda_u ramped over 16 epochs after
    warm-up, and the uniform-prior penalty. The peer is in eval mode while one network trains
    (l.42-43). Two PreAct ResNet-18s, SGD lr 0.02, momentum 0.9, weight decay 5e-4, lr /10 from
    epoch 150, 300 epochs; the test score is the argmax of the sum of both networks' logits
    (l.155). lambda_u and p_threshold per dataset and noise are the paper's appendix table, set
    in the suites.

    Inputs (LiJunnan1992/DivideMix@d9d3058 `dataloader_cifar.py` l.144-208): training views
    RandomCrop(32, padding=4) + flip, then ToTensor + Normalize; the GMM's loss pass and the test
    ToTensor + Normalize alone (`none`); CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994,
    0.2010), CIFAR-100 (0.507, 0.487, 0.441) / (0.267, 0.256, 0.276), which its paper suites set
    (the CIFAR loaders' own constants). No loader drops its last batch: the warm-up trains 391
    batches of 128, the engine 390 (`StreamSampler` says why that cannot matter); the labelled
    loader is below; the test set is scored whole, as here.

    Departures: the official loop runs epochs 0..300 (301); here `epochs` counts them (300). Its
    labelled loader keeps a last partial batch; here a pass is len // 64 full batches (its
    ramp-up still counts the official N // 64 + 1 iterations). Its GMM's k-means start is left to
    numpy's global generator; here it comes from the run's seed (the split is the same on
    well-separated losses). A split with no unlabelled sample (the official loader would fail)
    uses the labelled samples as the unlabelled stream too. The warm-up's entropy penalty clamps
    p before its log, where the official's 0 log 0 is NaN at a saturated softmax.

    Diagnostics: the labelled set network 1 trains on (from network 2's GMM), scored against the
    clean labels, and its complement as flagged noisy.
    """

    scored_network: str = "the sum of both networks' logits"

    class HParams(MethodHParams):
        epochs: int = Field(300, ge=1)
        network: str = "preact_resnet18"
        lr: float = Field(0.02, gt=0)
        momentum: float = Field(0.9, ge=0)
        weight_decay: float = Field(5e-4, ge=0)
        milestones: tuple[int, ...] = (150,)
        batch_size: int = Field(64, ge=1)
        warmup_batch_size: int = Field(128, ge=1)
        warm_up: int = Field(10, ge=0)
        lambda_u: float = Field(25.0, ge=0)
        p_threshold: float = Field(0.5, gt=0, lt=1)
        temperature: float = Field(0.5, gt=0)
        alpha: float = Field(4.0, gt=0)
        loss_history: int = Field(1, ge=1)
        """Epochs of normalised losses averaged for the GMM (the official 5 at 90 % noise)."""
        search_space: ClassVar[dict[str, Distribution]] = {
            "lambda_u": Choice((0.0, 25.0, 50.0, 150.0)),
            "p_threshold": Choice((0.5, 0.6, 0.7)),
        }
        entropy_penalty: bool | None = None
        """The warm-up's negative-entropy penalty; None = on for class-dependent noise
        (`NoiseFacts.class_dependent`: asym, asym_superclass, and pairflip, which the official
        `args.noise_mode == 'asym'` never meets)."""

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.nets = [self.build_network(), self.build_network()]
        self.optimizers = [
            make_optimizer(net.parameters(), "sgd", hp.lr, hp.momentum, hp.weight_decay)
            for net in self.nets
        ]
        self.schedules = [
            make_schedule(opt, "multistep", hp.epochs, milestones=hp.milestones)
            for opt in self.optimizers
        ]
        # the last `loss_history` epochs' normalised losses: float32 on the CPU, as the official
        self.losses = torch.zeros(2, 0, ctx.num_train)
        # the GMM posteriors stay float64, so the split compares them with p_threshold in float64
        # as the official does; w_x is their float32 cast, as the official's
        self.clean_prob = torch.ones(2, ctx.num_train, dtype=torch.float64, device=ctx.device)
        self.epoch = 0
        self.num_iter = [1, 1]
        self._steps_done = [0, 0]
        penalty = hp.entropy_penalty
        self.entropy_penalty = bool(ctx.noise.class_dependent) if penalty is None else penalty

    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Two passes an epoch, each tagged (its kind, the network it trains): the warm-up of
        network 1 then network 2, or, after the co-divide, MixMatch on each network's split."""
        self.epoch = epoch
        self._steps_done = [0, 0]
        if epoch < self.hp.warm_up:
            passes = [self._warmup_pass(k) for k in range(2)]
        else:
            self._split()
            passes = [self._mixmatch_pass(k) for k in range(2)]
        passes[0].followed_by = passes[1]
        return passes[0]

    def _warmup_pass(self, k: int) -> EpochPlan:
        stream = Stream(self.ctx.train_indices, self.ctx.noisy_labels, views=("weak",),
                        batch_size=self.hp.warmup_batch_size)  # fmt: skip
        return EpochPlan(streams={"all": stream}, phase="warmup", tag=("warmup", k))

    def _mixmatch_pass(self, k: int) -> EpochPlan:
        """Network k trains on the split of its peer's clean probabilities (l.264-268); the
        labelled stream sets the pass's length, as the official loop runs over the labelled
        loader and cycles the unlabelled one."""
        keep = self.clean_prob[1 - k] > self.hp.p_threshold
        labelled = keep.nonzero().squeeze(1)
        unlabelled = (~keep).nonzero().squeeze(1)
        if len(unlabelled) == 0:
            unlabelled = labelled
        if len(labelled) == 0:
            labelled = unlabelled
        self.num_iter[k] = len(labelled) // self.hp.batch_size + 1
        views, size = ("weak", "weak"), self.hp.batch_size
        return EpochPlan(
            streams={
                "labelled": Stream(labelled, self.ctx.noisy_labels, views, batch_size=size),
                "unlabelled": Stream(unlabelled, self.ctx.noisy_labels, views, batch_size=size),
            },
            tag=("mixmatch", k),
            length_from="labelled",
        )

    @torch.no_grad()
    def _split(self) -> None:
        """Both networks' clean probabilities, before either trains this epoch (l.261-262): each
        network's per-sample losses normalised in float32 on the CPU, the history mean taken
        there (l.179-180), the GMM fitted in float64 (`clean_probability`)."""
        losses = []
        for net in self.nets:
            logits = self.predict_training_set(net, net=net)
            loss = F.cross_entropy(logits, self.ctx.noisy_labels, reduction="none")
            losses.append(normalised_losses(loss))
        self.losses = torch.cat([self.losses, torch.stack(losses)[:, None]], dim=1)
        self.losses = self.losses[:, -self.hp.loss_history :]
        seed = int(self.ctx.rng.integers(2**31))
        for k in range(2):
            history = self.losses[k].contiguous().mean(dim=0)
            prob = clean_probability(history, seed, normalise=False)
            self.clean_prob[k] = torch.from_numpy(prob).to(self.clean_prob)

    def train_step(self, batch: Batch, tag: tuple[str, int]) -> dict[str, torch.Tensor]:
        kind, k = tag
        net, optimizer = self.nets[k], self.optimizers[k]
        if kind == "warmup":
            part = batch["all"]
            with self.autocast():
                loss = warmup_loss(net(part.views[0]).float(), part.labels, self.entropy_penalty)
            self.step(loss, optimizer)
            return {f"warmup_loss_{k + 1}": loss.detach()}
        return self._mixmatch_step(k, batch["labelled"], batch["unlabelled"])

    def _mixmatch_step(self, k: int, lab, unl) -> dict[str, torch.Tensor]:
        net, peer = self.nets[k], self.nets[1 - k]
        net.train()
        peer.eval()
        hp = self.hp
        onehot = F.one_hot(lab.labels, self.ctx.num_classes).float()
        w_x = self.clean_prob[1 - k][lab.indices].float()
        with torch.no_grad(), self.autocast():
            guesses = [n(v).float() for n in (net, peer) for v in unl.views]
            targets_u = co_guess(guesses, hp.temperature)
            targets_x = refine_labels(net(lab.views[0]).float(), net(lab.views[1]).float(),
                                      onehot, w_x, hp.temperature)  # fmt: skip
        lam = mixup_lambda(self.ctx.rng, hp.alpha, at_least_half=True)
        inputs = torch.cat([lab.views[0], lab.views[1], unl.views[0], unl.views[1]])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
        perm = mix_pairing(len(inputs), self.ctx.generator, inputs.device)
        mixed_input, mixed_target = mix(inputs, lam, perm), mix(targets, lam, perm)
        step = self._steps_done[k]
        lamb = linear_rampup(self.epoch + step / self.num_iter[k], hp.warm_up, hp.lambda_u)
        with self.autocast():
            loss, lx, lu = mixmatch_loss(net(mixed_input).float(), mixed_target, 2 * len(onehot),
                                         lamb)  # fmt: skip
        self.step(loss, self.optimizers[k])
        self._steps_done[k] = step + 1
        peer.train()
        return {f"loss_x_{k + 1}": lx.detach(), f"loss_u_{k + 1}": lu.detach()}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.nets[0](images) + self.nets[1](images)

    def diagnostics(self) -> Diagnostics | None:
        if self.epoch < self.hp.warm_up:
            return None
        keep = self.clean_prob[1] > self.hp.p_threshold
        return Diagnostics(selected=keep, flagged=~keep)

    def extra_state(self) -> dict[str, Any]:
        return {"losses": self.losses, "clean_prob": self.clean_prob}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.losses = state["losses"].float().cpu()
        self.clean_prob = state["clean_prob"].to(self.clean_prob)

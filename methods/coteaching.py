"""Co-teaching (Han et al., NeurIPS 2018): two networks teach each other with small-loss samples."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from nlbench.methods._two_networks import SmallLossHParams, SmallLossTwoNetworks, small_loss
from nlbench.methods.api import register
from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.plan import Batch


@register("coteaching")
class Coteaching(SmallLossTwoNetworks):
    """Co-teaching (NeurIPS 2018): two networks, each trained on the other's small-loss samples.

    Algorithm 1 of the paper, per mini-batch of the shuffled training set:

    4. D_f = the R(T)|D| smallest-loss samples under network f;
    5. D_g = the same under network g;
    6. update f on D_g; 7. update g on D_f (the cross update);
    8. R(T) = 1 - min(T tau / T_k, tau) (see `forget_rate_at`).

    Recipe of the official code (bhanML/Co-teaching, main.py): the 9-layer CNN, two Adam optimisers
    (lr 1e-3), lr decaying linearly and beta1 0.9 -> 0.1 from epoch 80 (100 on CIFAR-100: a suite
    sets `decay_start`), 199 trained epochs of batch 128, T_k = 10, c = 1, no augmentation, and
    tau = the noise rate, taken as the noise's expected flip rate (`NoiseFacts`): the nominal rate
    under the paper's own sym_flip and pairflip, r (C - 1) / C under DivideMix's `sym`, whose
    nominal ratio counts labels redrawn (some to their truth); `forget_rate` overrides it, and
    real-world noise must set it. The tau used is recorded each epoch (`assumed_noise_rate`).

    Quirks of the official code, each decided:
    Q1 loss scale: the official loss is the mean CE over the kept samples divided by their count
       k once more (loss.py l.26-29), i.e. sum / k^2; we do the same (`loss_scale: official`;
       `mean` is the paper's plain mean). With k fixed within an epoch Adam nearly absorbs it,
       but its eps does not, and Co-teaching+'s k varies per batch.
    Q2 dropout: the code's functional dropout2d is a no-op under its PyTorch 0.3 (training=False
       by default), so the published numbers were trained without dropout; `cnn9` has none by
       default (`network_options: {dropout: 0.25}` turns the paper's Table 3 dropout on).
    Q3 schedule: our epoch e is the official epoch e + 1 (methods/_two_networks.py), so the forget
       rate (tau/9 in the first trained epoch), lr and beta1 are the official values exactly; the
       exponent quirk (c on the linspace end point) is kept, and agrees with the paper for c = 1.
    Q4 test set: the official test loader drops the last partial batch (9,984 of 10,000 CIFAR
       images); the engine scores every test image.
    Q5 noise: the official noise is fixed across seeds (random_state=0); ours is drawn from the run
       seed unless the suite pins `noise[].seed`, which benchmarks/coteaching_paper.yaml does.
    Q7 selection: per mini-batch, on the batch's per-sample CE (on logits) before either update;
       both networks see the same batch; ties break by batch order (stable sort).
    Inputs (`inputs: unit`, the default): [0, 1] pixels, `transforms.ToTensor()` with no
       `Normalize`, as every official loader of the family (Co-teaching+ main.py l.58-125, JoCoR
       main.py l.68-126). `inputs: normalised` is an option: `mlpnet` and `cnn_small` have no
       BatchNorm, so the scale changes what Adam does (a JoCoR MNIST run fed normalised pixels
       took another path, 0.5-0.6 points lower around epoch 100, same last-10 mean).
    Epoch length: one pass of the shuffled training set (drop_last), stopped after 401 batches as
    the official loop stops (`num_iter_per_epoch` 400, `if i > 400: break`): nothing changes on
    CIFAR (390 batches), MNIST's 468 become 401. `num_iter_per_epoch: null` trains every batch.

    Scored network: net 1. Diagnostics: the samples net 1 trained on (net 2's picks).
    """

    class HParams(SmallLossHParams):
        """Co-teaching's official CIFAR-10 recipe; see the class docstring.

        `loss_scale` "official" divides each net's mean CE over its partner's k picks by k again,
        as loss.py l.26-29 does (sum / k^2); "mean" is the plain mean the paper writes.
        """

        loss_scale: Literal["official", "mean"] = "official"

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        self.optimizer1 = torch.optim.Adam(self.net1.parameters(), lr=hp.lr)
        self.optimizer2 = torch.optim.Adam(self.net2.parameters(), lr=hp.lr)
        self.schedule1 = self.schedule_for(self.optimizer1)
        self.schedule2 = self.schedule_for(self.optimizer2)

    def cross_update(
        self, out1: Tensor, out2: Tensor, labels: Tensor, forget_rate: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Steps 4-7 on one batch of outputs: each net's loss on the other's small-loss picks.

        Returns net 1's loss, net 2's loss, and the positions net 1 trains on (net 2's picks).
        """
        loss1 = F.cross_entropy(out1, labels, reduction="none")
        loss2 = F.cross_entropy(out2, labels, reduction="none")
        picks1 = small_loss(loss1, forget_rate)
        picks2 = small_loss(loss2, forget_rate)
        update1, update2 = loss1[picks2].mean(), loss2[picks1].mean()
        if self.hp.loss_scale == "official":
            update1, update2 = update1 / len(picks2), update2 / len(picks1)
        return update1, update2, picks2

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        part = batch["all"]
        x, y = part.views[0], part.labels
        with self.autocast():
            loss1, loss2, trained1 = self.cross_update(
                self.net1(x), self.net2(x), y, self.forget_rate
            )
        self.step(loss1, self.optimizer1)
        self.step(loss2, self.optimizer2)
        self.trained_net1[part.indices[trained1]] = True
        return {"loss_net1": loss1.detach(), "loss_net2": loss2.detach()}

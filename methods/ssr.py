"""SSR: Sample Selection and Relabelling (Feng, Tzimiropoulos, Patras, BMVC 2022).

Each epoch, in the official order (MrChenFeng/SSR_BMVC2022 `main_cifar.py`: the loop of `main`
l.274-285, `evaluate` l.120-170, `train` l.44-99):

1. feature pass: encoder + classifier in eval mode over every training image (weak view), or over
   the epoch's pool where the dataset draws one (Clothing1M, main_clothing1m.py l.120-143);
2. relabel: a sample whose max softmax probability is > theta_r takes the predicted class, every
   other sample its ORIGINAL noisy label (`relabel`);
3. select: a k-NN vote over the relabelled labels, divided by their class prior; a sample is clean
   when its label gets at least theta_s of the top vote (`knn_vote`, `select`);
4. train N // batch steps: mixup cross-entropy on class-balanced batches of selected samples (two
   strong views each) + lambda_fc x a SimSiam-style consistency loss on batches of all samples
   (prediction of the strong view vs stop-gradient projection of the weak view);
5. the engine tests the classifier on the clean test set, then the LR schedule steps once (cosine
   on CIFAR; x0.1 at epochs 50 and 100 in the real-world scripts).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from nlbench.errors import ConfigError
from nlbench.methods._ssr_command import SSR_COMMAND
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
from nlbench.methods.toolkit.feature_net import normal_init
from nlbench.methods.toolkit.mixing import mix, mix_pairing, mixup_lambda, soft_cross_entropy
from nlbench.methods.toolkit.networks import mlp_head
from nlbench.methods.toolkit.optim import ScheduleName, make_optimizer, make_schedule


def relabel(probs: Tensor, noisy: Tensor, theta_r: float) -> Tensor:
    """This epoch's labels: the prediction where max prob > theta_r (strict), else the noisy label.

    `noisy` must be the ORIGINAL noisy labels, never last epoch's output: the official code
    relabels from scratch every epoch (`modified_label = clone(noisy_label)`), so a sample whose
    confidence drops reverts to its noisy label.
    """
    confidence, prediction = probs.max(dim=1)
    return torch.where(confidence > theta_r, prediction, noisy)


def knn_vote(neighbours: Tensor, labels: Tensor, num_classes: int, balanced: bool = True) -> Tensor:
    """Per-sample class scores (N, C) from the labels of its k neighbours, rows summing to 1.

    Each of the k neighbours (row i of `neighbours`, which includes i itself when the index was
    queried with its own bank) weighs 1/k: the official `knn_predict` sets `sim_weight =
    ones_like(...)`, so there is no similarity weighting and no temperature. `balanced` divides
    by the class prior of `labels` over ALL N samples, pi_c = (n_c + 1e-10) / sum(n + 1e-10)
    (`weighted_knn`, norm='global'), so a minority class is not outvoted by sheer frequency;
    rows are then renormalised. Votes are integer counts divided by k, so equal counts tie
    exactly.
    """
    counts = torch.zeros(labels.shape[0], num_classes, device=labels.device)
    counts.scatter_add_(1, labels[neighbours], torch.ones_like(neighbours, dtype=counts.dtype))
    scores = counts / neighbours.shape[1]
    if balanced:
        sizes = torch.bincount(labels, minlength=num_classes).to(scores.dtype) + 1e-10
        scores = scores / (sizes / sizes.sum())
    return scores / scores.sum(dim=1, keepdim=True)


def select(
    neighbours: Tensor, labels: Tensor, num_classes: int, theta_s: float, balanced: bool = True
) -> Tensor:
    """Clean mask: score[label] / max score >= theta_s (non-strict, as the official `>=`).

    With the default theta_s = 1 a sample is clean iff its (relabelled) label is the top class of
    the prior-normalised vote, ties included.
    """
    scores = knn_vote(neighbours, labels, num_classes, balanced)
    own = scores.gather(1, labels[:, None]).squeeze(1)
    return own / scores.max(dim=1).values >= theta_s


def negative_cosine(prediction: Tensor, target: Tensor) -> Tensor:
    """SimSiam's D(p, z) = -mean cos(p, stopgrad(z)) (`utils/funcs.py:D`, 'simplified')."""
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1).mean()


@register("ssr")
class SSR(Method):
    """SSR (BMVC 2022): kNN selection + confidence relabelling; mixup CE + SimSiam consistency.

    Faithful to the official CIFAR code rule for rule (MrChenFeng/SSR_BMVC2022 `main_cifar.py`); defaults are its defaults.

    Inputs (MrChenFeng/SSR_BMVC2022@849530d `main_cifar.py` l.191-213, 240-242, 280): ToTensor +
    Normalize with CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010) or CIFAR-100
    (0.507, 0.487, 0.441) / (0.267, 0.256, 0.276), which its paper suites set (the CIFAR loaders'
    own constants); weak = RandomCrop(32, padding=4) + flip before them, strong = crop + flip +
    CIFAR10Policy before them, the test un-augmented, the feature pass on the weak view; both
    training loaders drop their last partial batch (l.242, 280), as the engine does, and the test
    loader keeps it (l.240), as the engine scores the whole test set. No departure.

    Where this implementation departs from it, and why:

    * Real-world scripts (main_animal10.py, main_clothing1m.py, main_webvision.py): their recipes
      are hyperparameters here (`schedule`, `milestones`, `class_prior`, the init stds, head
      sizes; see the ssr_* suites). An epoch is len(pool) // batch steps with full batches, where
      the official Clothing1M and WebVision loaders (no drop_last) also train a last short batch;
      Clothing1M's scheduler steps before its test, which changes no trained weight.

    * Empty or tiny selections. The official labelled loader (`drop_last=True`) yields no batch
      when fewer than `batch_size` class-balanced ids exist, and its bare `except:` then crashes
      the run. The engine's sampler gives the whole pass as one short batch instead; if nothing
      at all is selected, the epoch trains the consistency loss alone rather than dying.
    * Noise. The official draws noise with Python `random` and caches it in
      `./{dataset}_{ratio}_{open}_{mode}_noise.json`, silently reused by later runs whatever their
      seed; here noise is the shared `data.noise` model (same procedure: exactly int(r*N) samples
      redrawn uniformly over all C classes, or the CIFAR-10 asym map), a pure function of the
      seed. Open-set noise is not supported.
    * Strong view. The official applies PIL `CIFAR10Policy` per image in DataLoader workers (and
      needs `np.int`, gone in numpy >= 1.24); the engine applies the same 25-sub-policy
      AutoAugment on the device (`nlbench.methods.toolkit.autoaugment`), matched to PIL, one policy per image.
    * Randomness. Mixup's lambda comes from the run's `ctx.rng` (official: global `np.random`), its
      permutation from `ctx.generator` (official: global torch RNG), sampling and augmentation
      from the engine's generators: runs reproduce, but not the official random streams.
    * Precision. The official runs fp32. On CUDA the engine's bf16 autocast (engine.amp) also
      covers the feature pass, so probabilities near theta_r can fall on the other side of the
      threshold; `engine: {amp: false}` restores fp32.
    * The weak branch of the consistency loss runs under no_grad: the official builds its graph
      but detaches z1 before use, so gradients are identical; its train-mode BN statistics update
      is kept. The official also computes p1 = h(z1) and never uses it: its only effect is on the
      prediction head's BN running statistics, which nothing reads, so it is skipped.
    * Neighbour search. As the official code, the queries are the once-normalised features
      (main_cifar.py l.135) and the bank is normalised again (utils/funcs.py l.67). With the torch
      backend the neighbour lists equal the official ones bit for bit (tested on near-tied
      features); faiss (the CPU default) rounds its inner products differently and may order
      near-tied neighbours differently: `engine.neighbour_backend: torch` gives the official
      arithmetic.
    * Vote ties. Votes are integer counts / k, so equal counts tie exactly; the official float sum
      of k weights 1/k can differ in the last bit between classes with equal counts.
    * k > N is a ConfigError at construction (the official `topk` fails mid-epoch).

    Kept on purpose, though one might "fix" them: epoch 0 selects with a randomly initialised
    network (no warm-up); the bank is computed in eval mode on the weak, randomly cropped and
    flipped view, not on clean images; relabelling is strict `>` and not cumulative while
    selection is `>=`; the neighbour list includes the sample itself; the prior is taken over all
    N relabelled labels, not the selected ones; weight decay applies to every parameter, BN and
    biases included; the three forwards per step (mixed, weak, strong) are separate train-mode BN
    batches; one lambda per step with lambda = max(lambda, 1 - lambda).

    Choices the paper and code leave open: the headline is the engine's last-epoch accuracy (the
    official logs both best and current; which one the tables report is not stated); the
    encoder's own classifier head is replaced by Identity exactly as the official
    `encoder.fc = Identity()`, and SSR's classifier is a separate Linear(feature_dim, C).
    """

    scored_network = "classifier on the encoder"
    command = SSR_COMMAND
    epoch_pool = True

    class HParams(MethodHParams):
        """main_cifar.py's defaults (l.14-41, 263-265); heads 256 -> 128 as l.247-254 build them."""

        epochs: int = Field(300, ge=1)
        network: str = "preact_resnet18"
        lr: float = Field(0.02, gt=0)
        momentum: float = Field(0.9, ge=0)
        weight_decay: float = Field(5e-4, ge=0)
        eta_min_ratio: float = Field(1 / 50, ge=0)
        batch_size: int = Field(128, ge=1)
        theta_r: float = Field(0.9, ge=0, le=1)
        theta_s: float = Field(1.0, ge=0, le=1)
        k: int = Field(200, ge=1)
        search_space: ClassVar[dict[str, Distribution]] = {
            "theta_r": Choice((0.7, 0.8, 0.9, 0.95)),
            "theta_s": Choice((0.8, 0.9, 1.0)),
            "k": Choice((10, 20, 50, 100, 200)),
        }
        lambda_fc: float = Field(1.0, ge=0)
        mixup_alpha: float = Field(4.0, gt=0)
        proj_hidden: int = Field(256, ge=1)
        proj_dim: int = Field(128, ge=1)
        schedule: ScheduleName = "cosine"
        milestones: tuple[int, ...] = ()
        """With `schedule: multistep` (the real-world scripts: [50, 100], x0.1)."""
        class_prior: bool = True
        """Divide the kNN vote by the class prior. main_clothing1m.py l.142 passes (k, 100, 10)
        positionally to `weighted_knn`, so its norm is 10, not 'global': no prior there."""
        classifier_init_std: float | None = Field(None, gt=0)
        """N(0, std) weights and zero biases for the classifier (main_animal10.py l.203-218:
        0.005; main_clothing1m.py l.170-189: 0.001); None keeps PyTorch's default."""
        heads_init_std: float | None = Field(None, gt=0)
        """The same for the projection and prediction heads' Linear layers (Clothing1M 0.001)."""

        @model_validator(mode="after")
        def _known_schedule(self):
            if self.schedule not in ("cosine", "multistep"):
                raise ValueError(f"ssr schedule '{self.schedule}': use cosine or multistep")
            if self.schedule == "multistep" and not self.milestones:
                raise ValueError("ssr schedule 'multistep' needs milestones, e.g. [50, 100]")
            return self

    def __init__(self, ctx: MethodContext, hp: HParams) -> None:
        super().__init__(ctx, hp)
        pool = min(ctx.num_train, ctx.pool_size or ctx.num_train)
        if hp.k > pool:
            raise ConfigError(
                f"ssr: k={hp.k} neighbours but an epoch trains on at most {pool} samples; lower "
                "methods.ssr.hparams.k"
            )
        self.encoder = self.build_network()
        self.encoder.classifier = nn.Identity()
        dim = self.encoder.feature_dim
        self.classifier = nn.Linear(dim, ctx.num_classes).to(ctx.device)
        self.proj_head = mlp_head(dim, hp.proj_hidden, hp.proj_dim).to(ctx.device)
        self.pred_head = mlp_head(hp.proj_dim, hp.proj_hidden, hp.proj_dim).to(ctx.device)
        params = [
            p
            for part in (self.encoder, self.classifier, self.proj_head, self.pred_head)
            for p in part.parameters()
        ]
        for part, std in ((self.classifier, hp.classifier_init_std),
                          (self.proj_head, hp.heads_init_std), (self.pred_head, hp.heads_init_std)):  # fmt: skip
            if std is not None:
                normal_init(part, std)
        self.optimizer = make_optimizer(params, "sgd", hp.lr, hp.momentum, hp.weight_decay)
        self.schedule = make_schedule(
            self.optimizer, hp.schedule, hp.epochs, hp.eta_min_ratio, milestones=hp.milestones
        )
        self.labels = ctx.noisy_labels.clone()
        self.selected = torch.ones_like(ctx.noisy_labels, dtype=torch.bool)

    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Feature pass, relabel, select; then plan the labelled and the all-samples streams.

        All of it runs over the epoch's training ids (every sample, or Clothing1M's subsample of
        the epoch, over which main_clothing1m.py l.120-143 builds its bank, relabels and
        selects); samples outside them keep their noisy label and are not selected."""
        rows = self.ctx.train_indices
        features, logits = self.predict_training_set(self._features_and_logits, "weak", rows)
        noisy = self.ctx.noisy_labels
        labels = relabel(logits.softmax(dim=1), noisy[rows], self.hp.theta_r)
        # main_cifar.py l.135 normalises the bank once; weighted_knn (utils/funcs.py l.67)
        # normalises the bank again but not the queries: the index does the former, and the
        # queries go in as they are.
        unit = F.normalize(features, dim=1)
        index = self.ctx.neighbour_index(unit)
        _, neighbours = index.search(unit, k=self.hp.k, normalise_queries=False)
        selected = select(neighbours.to(labels.device), labels, self.ctx.num_classes,
                          self.hp.theta_s, self.hp.class_prior)  # fmt: skip
        self.labels = noisy.clone()
        self.labels[rows] = labels
        self.selected = torch.zeros_like(noisy, dtype=torch.bool)
        self.selected[rows] = selected
        size = self.hp.batch_size
        streams = {}
        if selected.any():
            streams["labelled"] = Stream(
                rows[selected],
                self.labels,
                views=("strong", "strong"),
                sampling="class_balanced",
                batch_size=size,
            )
        streams["all"] = Stream(
            rows, self.labels, views=("weak", "strong"), sampling="shuffle", batch_size=size
        )
        return EpochPlan(streams=streams, steps=max(1, len(rows) // size))

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """loss = mixup soft CE on selected samples + lambda_fc * D(h(f(strong)), f(weak))."""
        weak, strong = batch["all"].views
        with self.autocast():
            loss_ce = (
                self._mixup_loss(batch["labelled"])
                if "labelled" in batch
                else torch.zeros((), device=self.ctx.device)
            )
            with torch.no_grad():
                z_weak = self.proj_head(self.encoder.features(weak))
            p_strong = self.pred_head(self.proj_head(self.encoder.features(strong)))
            loss_fc = negative_cosine(p_strong, z_weak)
            loss = loss_ce + self.hp.lambda_fc * loss_fc
        self.step(loss, self.optimizer)
        return {"loss": loss.detach(), "loss_ce": loss_ce.detach(), "loss_fc": loss_fc.detach()}

    def predict(self, images: Tensor) -> Tensor:
        return self.classifier(self.encoder.features(images))

    def diagnostics(self) -> Diagnostics:
        return Diagnostics(selected=self.selected, labels=self.labels)

    def _features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder.features(images)
        return features, self.classifier(features)

    def _mixup_loss(self, labelled: StreamBatch) -> Tensor:
        """Mixup of the 2B strong views, one lambda ~ Beta(a, a) per step, lambda >= 1/2."""
        x = torch.cat(labelled.views)
        onehot = F.one_hot(labelled.labels, self.ctx.num_classes).float()
        y = torch.cat([onehot, onehot])
        lam = mixup_lambda(self.ctx.rng, self.hp.mixup_alpha, at_least_half=True)
        perm = mix_pairing(x.shape[0], self.ctx.generator, x.device)
        mixed = self.classifier(self.encoder.features(mix(x, lam, perm)))
        return soft_cross_entropy(mixed, mix(y, lam, perm))

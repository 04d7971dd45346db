"""A paper's training protocol, defined once: what a method and the baseline under it share.

A paper compares its method with a "Standard" network trained on the noisy labels under the same
protocol: network, optimiser with every one of its settings, schedule, batch, views, epochs,
iteration cap and input scaling. Written as hyperparameter overrides in each suite, a field left
out was silently inherited from another protocol (the CE baselines of the Co-teaching family kept
the PreAct recipe's weight decay 5e-4, where the official code builds `Adam(params, lr=lr)` with
none). A suite names the protocol instead (`methods: [{name: ce, protocol: jocor}]`): every field
below is set, per dataset family, and the method's own entry overrides on top.

Sources (file:line of the official code, repositories and commits in SOURCES.md):

* Co-teaching (bhanML/Co-teaching main.py): Adam(lr 0.001) with no weight decay, the linear decay
  and beta1 switch from epoch 80, batch 128, `transforms.ToTensor()` alone, 200 epochs of which
  199 train, 401 batches an epoch at most; the 9-layer CNN on CIFAR.
* Co-teaching+ (xingruiyu/coteaching_plus main.py l.42-125, l.165-177, l.322-350): the same
  optimiser and schedule; `MLPNet` on MNIST, `CNN_small` on CIFAR-10, `CNN` on CIFAR-100; no
  iteration cap (its loop, l.232, trains every batch).
* JoCoR (hongxin001/JoCoR main.py l.45-126, algorithm/jocor.py l.30-38, l.64-65, l.118-121): the
  same optimiser and schedule over both networks, decay from 80 (100 on CIFAR-100); `MLPNet` on
  MNIST, the 6-conv CNN on CIFAR; 401 batches an epoch at most.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nlbench.errors import ConfigError
from nlbench.methods.toolkit.optim import OptimizerName, ScheduleName
from nlbench.registry import Registry


class Protocol(BaseModel):
    """Every setting of one paper's training recipe on one dataset family."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network: str
    optimizer: OptimizerName
    lr: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0)
    """SGD's momentum; Adam's betas are (0.9, 0.999), beta1 set by the `coteaching` schedule."""
    weight_decay: float = Field(ge=0)
    nesterov: bool = False
    schedule: ScheduleName
    decay_start: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    view: Literal["weak", "none"]
    epochs: int = Field(ge=1)
    num_iter_per_epoch: int | None
    inputs: Literal["normalised", "unit"]

    def hparams_for(self, fields: set[str]) -> dict[str, object]:
        """The protocol's values for the hyperparameters a method has; a method that fixes a
        setting in its code (JoCoR's Adam) has no field for it and takes none."""
        return {k: v for k, v in self.model_dump().items() if k in fields}


def _small_loss(network: str, decay_start: int = 80, cap: int | None = 400) -> Protocol:
    """The Co-teaching family's shared recipe: Adam 1e-3 without weight decay, the official
    linear decay and beta1 switch, batch 128, no augmentation, [0, 1] pixels, 199 trained epochs."""
    return Protocol(
        network=network,
        optimizer="adam",
        lr=0.001,
        weight_decay=0.0,
        schedule="coteaching",
        decay_start=decay_start,
        batch_size=128,
        view="none",
        epochs=199,
        num_iter_per_epoch=cap,
        inputs="unit",
    )


PROTOCOLS: Registry[dict[str, Protocol]] = Registry("protocol")
for _name, _variants in {
    "coteaching": {
        "mnist": _small_loss("cnn9"),
        "cifar10": _small_loss("cnn9"),
        "cifar100": _small_loss("cnn9", decay_start=100),
    },
    "coteaching_plus": {
        "mnist": _small_loss("mlpnet", cap=None),
        "cifar10": _small_loss("cnn_small", cap=None),
        "cifar100": _small_loss("cnn6", decay_start=100, cap=None),
    },
    "jocor": {
        "mnist": _small_loss("mlpnet"),
        "cifar10": _small_loss("cnn6"),
        "cifar100": _small_loss("cnn6", decay_start=100),
    },
}.items():
    PROTOCOLS.add(_name, _variants)
"""Protocols by paper, then by dataset family (the loader's name)."""


def protocol(name: str, dataset: str) -> Protocol:
    """The protocol `name` on dataset family `dataset`, or one line naming what exists."""
    variants = PROTOCOLS.lookup(name)
    if dataset not in variants:
        raise ConfigError(
            f"protocol '{name}' is defined for {', '.join(variants)}, not dataset '{dataset}'; "
            "set the method's hparams instead"
        )
    return variants[dataset]

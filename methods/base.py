"""The method contract and registry: a method owns only what makes it that method.

The engine owns the loop, the data on the device, augmentation, evaluation, timing and checkpoints.
A method declares each epoch's data (`begin_epoch` -> EpochPlan), takes one optimiser step per batch
(`train_step`), predicts logits for evaluation, and may report which samples it trusts
(`diagnostics`) so the engine can score that against the clean labels it never sees.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness.context import MethodContext
from harness.errors import ConfigError, nearest
from harness.plan import Batch, EpochPlan

_REGISTRY: dict[str, type[Method]] = {}


class MethodHParams(BaseModel):
    """Base of every method's hyperparameters; defaults are the official code's, YAML overrides them.

    Unknown keys are rejected so that a typo in a suite never silently runs the default.
    `network_options` go to the network factory (e.g. a narrower network for tests).
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(ge=1)
    network: str
    network_options: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Diagnostics:
    """Which training samples the method trusts this epoch, and with which labels.

    `selected` is a bool mask over the training set; `labels` the labels the method trains with
    (e.g. SSR's relabelled ones; None = the noisy labels).
    """

    selected: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class Method(ABC):
    """Base class: subclasses set `HParams` and implement `begin_epoch`, `train_step`, `predict`."""

    name: ClassVar[str] = ""
    HParams: ClassVar[type[MethodHParams]] = MethodHParams
    scored_network: ClassVar[str] = "the only network"

    def __init__(self, ctx: MethodContext, hp: MethodHParams) -> None:
        self.ctx = ctx
        self.hp = hp

    @abstractmethod
    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Decide this epoch's streams (selection, relabelling, schedules happen here)."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimiser step on one batch; returns detached losses (the engine averages them)."""

    @abstractmethod
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the scored network for normalised images (eval mode is set by the engine)."""

    def end_epoch(self, epoch: int) -> None:
        """Called after evaluation: step every LR scheduler the method holds (the official order)."""
        for sched in self._parts(torch.optim.lr_scheduler.LRScheduler).values():
            sched.step()

    def diagnostics(self) -> Diagnostics | None:
        return None

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimiser update: zero, backward, step."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def train_mode(self, training: bool = True) -> None:
        for module in self._parts(nn.Module).values():
            module.train(training)

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and schedulers, found by type, plus `extra_state()`."""
        state = {key: part.state_dict() for key, part in self._stateful().items()}
        state["_extra"] = self.extra_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, part in self._stateful().items():
            part.load_state_dict(state[key])
        self.load_extra_state(state.get("_extra", {}))

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond networks and optimisers (e.g. a running selection); none by default."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_state` returned."""

    def _stateful(self) -> dict[str, Any]:
        kinds = (nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
        return {k: v for k, v in vars(self).items() if isinstance(v, kinds)}

    def _parts(self, kind: type) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if isinstance(v, kind)}


def register(name: str):
    """Class decorator: make a method available to suites under `name`."""

    def wrap(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name '{name}' is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _discover() -> None:
    """Import every built-in method module, then third-party ones from `nlbench.methods`."""
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"methods.{info.name}")
    for ep in entry_points(group="nlbench.methods"):
        ep.load()


def available() -> dict[str, type[Method]]:
    """All registered methods by name."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> type[Method]:
    """The method class registered as `name`, or a ConfigError naming the nearest valid one."""
    found = available()
    if name not in found:
        raise ConfigError(
            f"unknown method '{name}'{nearest(name, found)}; known: {', '.join(found)} "
            "(`python run_bench.py list` shows them)"
        )
    return found[name]

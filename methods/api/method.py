"""The method contract: a method owns only what makes it that method.

The engine owns the loop, the data on the device, augmentation, evaluation, timing and checkpoints.
A method declares each epoch's data (`begin_epoch` -> EpochPlan), takes one optimiser step per batch
(`train_step`), predicts logits for evaluation, and may report which samples it trusts
(`diagnostics`) so the engine can score that against the clean labels it never sees.

Mixed precision: the engine never wraps `train_step`. A method runs its forward passes and its loss
under `self.autocast()` (bf16 on CUDA when the engine enables it, a no-op otherwise) and calls
`self.step(loss, optimizer)` outside it, as PyTorch recommends: backward and the optimiser step run
in the parameters' own precision.

State: networks, optimisers and LR schedulers held as attributes are found by type, also inside
lists, tuples and dicts (`self.nets = [net1, net2]`), so they are checkpointed, switched between
train and eval mode, and stepped at the end of each epoch without being declared twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.plan import Batch, EpochPlan
from nlbench.methods.api.search import Distribution

STATEFUL = (nn.Module, torch.optim.Optimizer, LRScheduler)


class MethodHParams(BaseModel):
    """Base of every method's hyperparameters; defaults are the official code's, YAML overrides them.

    Unknown keys are rejected so that a typo in a suite never silently runs the default.
    `network_options` go to the network factory with `network` (e.g. a narrower network for tests).
    `search_space` names the knobs the method's paper tunes and their ranges
    (`nlbench.methods.api.search`), for suites that search hyperparameters.
    """

    model_config = ConfigDict(extra="forbid")
    search_space: ClassVar[dict[str, Distribution]] = {}

    epochs: int = Field(ge=1)
    network: str
    network_options: dict[str, Any] = Field(default_factory=dict)
    inputs: Literal["normalised", "unit"] = "normalised"
    """What the network sees of a pixel x in 0..255: `normalised` is (x / 255 - mean) / std per
    channel (`ToTensor` + `Normalize`, with `input_stats` or else the training images' measured
    statistics); `unit` is x / 255 in [0, 1] (`ToTensor` alone, as the Co-teaching family's
    official code feeds its networks). Each method's default is its official code's."""
    input_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """The official code's `Normalize(mean, std)` constants, one value per channel (None: the
    dataset's measured statistics). Only read with `inputs: normalised`."""


@dataclass
class Diagnostics:
    """Which training samples the method trusts this epoch, and with which labels.

    `selected` is a bool mask over the training set; `labels` the labels the method trains with
    (e.g. SSR's relabelled ones; None = the noisy labels); `flagged` a bool mask of the samples
    the method believes mislabelled (scored as noise detection against the truly mislabelled
    ones); `transition` the method's estimate of the noise transition matrix,
    T[i, j] = P(noisy label j | clean label i), which the engine compares with the realised one
    and the record keeps (its last value).
    """

    selected: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    flagged: torch.Tensor | None = None
    transition: torch.Tensor | None = None
    assumed_noise_rate: float | None = None
    """The noise rate the method assumed this epoch (Co-teaching's tau), recorded as given."""


@dataclass(frozen=True)
class MethodCommand:
    """A method's own command line (e.g. its official training script's flags), run as one suite.

    `to_suite` turns the arguments into a suite as plain data (the YAML structure of a suite file)
    or raises ConfigError; the CLI offers it as `run_bench.py <name> ...`.
    """

    name: str
    help: str
    description: str
    to_suite: Callable[[list[str]], dict[str, Any]]
    hints: dict[str, str] = field(default_factory=dict)
    """How this command spells nlbench's own advice, e.g. `--set dataset.root=PATH` ->
    `--dataset_path PATH`, so an error line names the flag the user actually typed."""


class Method(ABC):
    """Base class: subclasses set `HParams` and implement `begin_epoch`, `train_step`, `predict`."""

    name: ClassVar[str] = ""
    HParams: ClassVar[type[MethodHParams]] = MethodHParams
    scored_network: ClassVar[str] = "the only network"
    command: ClassVar[MethodCommand | None] = None
    epoch_pool: ClassVar[bool] = False
    """True when the method trains only on `ctx.train_indices` and runs its feature passes over
    them, so it can train on a dataset that draws a fresh subsample every epoch (Clothing1M);
    the engine refuses other methods on such a dataset."""

    def __init__(self, ctx: MethodContext, hp: MethodHParams) -> None:
        self.ctx = ctx
        self.hp = hp

    @abstractmethod
    def begin_epoch(self, epoch: int) -> EpochPlan:
        """Decide this epoch's streams (selection, relabelling, schedules happen here)."""

    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimiser step on one batch; returns detached losses (the engine averages them).

        A method whose plans tag their passes (`EpochPlan.tag`) takes the tag as a second
        argument: `train_step(self, batch, tag)`."""

    @abstractmethod
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the scored network for normalised images (eval mode is set by the engine)."""

    def predict_each(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of each network a method trains side by side, by name (empty: one network).

        The engine scores each on the test set every epoch (`EpochLog.network_acc`), so a paper
        that reports the mean over its networks (JoCoR) can be scored as it was.
        """
        return {}

    @classmethod
    def uses_oracle_transition(cls, hp: MethodHParams) -> bool:
        """Whether these hyperparameters name an oracle that reads the realised transition matrix
        (`MethodContext.oracle_transition`); only then does the engine put it in the context."""
        return False

    def end_epoch(self, epoch: int) -> None:
        """Called after evaluation: step every LR scheduler the method holds (the official order)."""
        for sched in self.parts(LRScheduler).values():
            sched.step()

    def diagnostics(self) -> Diagnostics | None:
        return None

    def build_network(self) -> nn.Module:
        """The network `hp.network` with `hp.network_options`, on the run's device."""
        return self.ctx.network(self.hp.network, **self.hp.network_options)

    def autocast(self):
        """Mixed precision for forward passes and losses (see the module docstring)."""
        return self.ctx.autocast()

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        clip_norm: float | None = None,
    ) -> None:
        """One optimiser update: zero, backward, (clip the gradient norm,) step. Call it outside
        `autocast()`."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()

    def train_mode(self, training: bool = True) -> None:
        for module in self.parts(nn.Module).values():
            module.train(training)

    @torch.no_grad()
    def predict_training_set(
        self,
        fn: Callable[[torch.Tensor], Any],
        view: str = "none",
        rows: torch.Tensor | None = None,
        net: nn.Module | None = None,
    ) -> Any:
        """`fn` over every training image in index order (or those at `rows`: an epoch's pool),
        as view `view`, without gradients and in eval mode (`net`'s alone, or every network the
        method holds), train mode restored after. The step every method that scores its own
        training set shares: Confident Learning's folds, forward's T estimate, DivideMix's
        co-divide, SSR's feature bank. Outputs come back as float32 (a tensor or a tuple)."""
        modules = [net] if net is not None else list(self.parts(nn.Module).values())
        for module in modules:
            module.eval()
        try:
            return self.ctx.features(fn, view=view, rows=rows)
        finally:
            for module in modules:
                module.train()

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and schedulers, found by type, plus `extra_state()`."""
        state = {key: part.state_dict() for key, part in self.parts(STATEFUL).items()}
        state["_extra"] = self.extra_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, part in self.parts(STATEFUL).items():
            part.load_state_dict(state[key])
        self.load_extra_state(state.get("_extra", {}))

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond networks and optimisers (e.g. a running selection); none by default."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what `extra_state` returned."""

    def parts(self, kind: type | tuple[type, ...]) -> dict[str, Any]:
        """Attributes of type `kind` by dotted path (`net1`, `nets.0`, `heads.proj`)."""
        return {path: value for path, value in _walk(vars(self)) if isinstance(value, kind)}


def _walk(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) for every attribute, descending into lists, tuples, dicts and dataclasses
    (a `Stage`), not into modules."""
    for key, value in tree.items():
        if key == "ctx":
            continue
        path = f"{prefix}{key}"
        if is_dataclass(value) and not isinstance(value, type):
            yield from _walk({f.name: getattr(value, f.name) for f in fields(value)}, f"{path}.")
        elif isinstance(value, (list, tuple)):
            yield from _walk({str(i): v for i, v in enumerate(value)}, f"{path}.")
        elif isinstance(value, dict):
            yield from _walk({str(k): v for k, v in value.items()}, f"{path}.")
        else:
            yield path, value

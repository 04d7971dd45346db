"""The training engine: owns the epoch loop, the data on the device, views, evaluation and timing.

One run = one method on one noisy dataset. Each epoch: the method plans (`begin_epoch`: its
selection/relabelling, timed as "selection"), the engine draws batches from the plan's streams and
builds their augmented views on the device (timed as "train" together with the method's steps),
evaluates the scored network on the clean test set ("eval"), scores the method's diagnostics against
the clean labels, and lets the method step its schedulers. Losses stay on the device until the end
of the epoch, so a step costs no host sync.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from nlbench.data.dataset import Dataset, EvalSet
from nlbench.data.image_files import class_balanced_subsample
from nlbench.data.noise import NoiseFacts, NoisyLabels
from nlbench.engine.checkpoint import RunStreams, load_checkpoint, save_checkpoint
from nlbench.engine.diagnostics import score_diagnostics, transition_of
from nlbench.engine.images import ImageSource, in_order, take
from nlbench.engine.options import EngineOptions
from nlbench.engine.passes import train_epoch
from nlbench.engine.views import RunViews, map_training_set
from nlbench.errors import ConfigError
from nlbench.methods.api import Method, MethodHParams
from nlbench.methods.api.context import MethodContext
from nlbench.methods.toolkit.neighbours import NeighbourIndex
from nlbench.methods.toolkit.networks import build_network
from nlbench.specs import EpochLog


class RunFailed(Exception):
    """A run that cannot go on (a non-finite loss, an exception in the method): recorded as data."""

    def __init__(self, reason: str, epoch: int, epochs: list[EpochLog]) -> None:
        super().__init__(reason)
        self.reason, self.epoch, self.epochs = reason, epoch, epochs


@dataclass
class FitResult:
    """What the engine measured; the runner wraps it into a record."""

    epochs: list[EpochLog]
    scored_network: str
    train_seconds: float
    images_seen: int
    resumed_from: int | None = None
    switches: dict[str, bool] = field(default_factory=dict)
    estimates: dict[str, list[list[float]]] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_streams(
    seed: int,
) -> tuple[torch.Generator, torch.Generator, torch.Generator, np.random.Generator]:
    """The run's independent random streams: sampling, views, the method's torch and numpy ones.

    Spawned from `numpy.random.SeedSequence(seed)`, so no two seeds share a stream (seeding each
    with seed + i made seed 0's view stream seed 1's sampling stream).
    """
    children = np.random.SeedSequence(seed).spawn(4)
    torch_seeds = [int(child.generate_state(1, np.uint64)[0] >> 1) for child in children[:3]]
    sample, view, method = (torch.Generator().manual_seed(s) for s in torch_seeds)
    return sample, view, method, np.random.default_rng(children[3])


def _device_network(
    num_classes: int,
    image_shape: tuple[int, int, int],
    device: torch.device,
    switches: dict[str, bool],
    compile_mode: str,
    name: str,
    **options: Any,
) -> torch.nn.Module:
    """A registered network on the run's device, with the engine's layout and compile switches."""
    c, h, _ = image_shape
    net = build_network(name, num_classes, c, h, **options).to(device)
    if switches["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    if switches["compile"]:
        net.features = torch.compile(net.features, mode=compile_mode)
        net.forward = torch.compile(net.forward, mode=compile_mode)
    return net


class Engine:
    """Runs one method on one noisy dataset; see the module docstring for the epoch anatomy."""

    def __init__(
        self,
        dataset: Dataset,
        noisy: NoisyLabels,
        seed: int,
        device: torch.device,
        options: EngineOptions,
        noise: NoiseFacts | None = None,
        validation: np.ndarray | EvalSet | None = None,
    ) -> None:
        """`validation`: indices of the training samples held out as the noisy validation split
        (`nlbench.data.splits`). They are cut from the training set before the method exists, so
        no train step, selection or neighbour bank can reach them; the engine alone scores the
        scored network on them, against their noisy labels, every epoch. Or the dataset's own
        validation set (`Dataset.val`), scored against its labels, the training set left whole."""
        self.dataset, self.seed, self.device, self.options = dataset, seed, device, options
        cuda = device.type == "cuda"
        self.switches = {
            "amp_bf16": options.amp and cuda,
            "channels_last": options.channels_last and cuda,
            "cudnn_benchmark": options.cudnn_benchmark and cuda,
            "compile": options.compile and cuda,
        }
        if cuda:
            torch.backends.cudnn.benchmark = self.switches["cudnn_benchmark"]
        seed_everything(seed)
        self.sample_gen, self.view_gen, self.method_gen, self.rng = run_streams(seed)
        own = isinstance(validation, EvalSet)
        val_rows = np.asarray([] if validation is None or own else validation, dtype=np.int64)
        train_rows = np.setdiff1d(np.arange(len(dataset.y_train)), val_rows)
        self.has_validation = validation is not None
        val_images = validation.images if own else take(dataset.x_train, val_rows)
        self.views = RunViews(dataset, device, self.view_gen, self.switches["channels_last"],
                            train_rows, val_images, options.data_workers)  # fmt: skip
        self.clean = torch.from_numpy(dataset.y_train[train_rows]).long().to(device)
        self.noisy = torch.from_numpy(noisy.labels[train_rows]).long().to(device)
        val_labels = validation.labels if own else noisy.labels[val_rows]
        self.val_labels = torch.from_numpy(val_labels).long().to(device)
        self.y_test = torch.from_numpy(dataset.y_test).long().to(device)
        amp_dtype = torch.bfloat16 if self.switches["amp_bf16"] else None
        # Partials of module functions over the views (images only), not bound methods of the
        # engine: nothing reachable from the context leads to the clean labels (`build` adds the
        # realised transition matrix only for a method that names that oracle).
        self.ctx = MethodContext(
            num_classes=dataset.num_classes,
            image_shape=dataset.image_shape,
            device=device,
            noisy_labels=self.noisy,
            noise=noise or NoiseFacts(),
            rng=self.rng,
            generator=self.method_gen,
            network=functools.partial(
                _device_network,
                dataset.num_classes,
                dataset.image_shape,
                device,
                self.switches,
                options.compile_mode,
            ),
            feature_pass=functools.partial(map_training_set, self.views, options.eval_batch_size),
            neighbour_index=functools.partial(
                NeighbourIndex.build, backend=options.neighbour_backend
            ),
            amp_dtype=amp_dtype,
            pool_size=dataset.epoch_samples,
        )

    def build(self, method_cls: type[Method], hp: MethodHParams) -> Method:
        """The method on this run's context; the realised transition matrix is put in the
        context only for a method whose hyperparameters name the oracle that reads it."""
        wants = method_cls.uses_oracle_transition(hp)
        name = self.dataset.name
        if wants and not self.dataset.clean_train:
            raise ConfigError(
                f"{method_cls.name}: its oracle reads the clean training labels, which dataset "
                f"'{name}' does not have; drop the oracle option"
            )
        if self.dataset.epoch_samples and not method_cls.epoch_pool:
            raise ConfigError(
                f"{method_cls.name} works on the whole training set every epoch, but dataset "
                f"'{name}' trains on a fresh subsample of {self.dataset.epoch_samples} per epoch; "
                "run a method that draws from the epoch's pool (ce, ssr, coteaching, ...)"
            )
        self.views.scale_inputs(hp, self.dataset.image_shape[0])
        self.ctx.oracle_transition = (
            transition_of(self.noisy, self.clean, self.dataset.num_classes) if wants else None
        )
        return method_cls(self.ctx, hp)

    @torch.no_grad()
    def evaluate(self, method: Method) -> tuple[float, dict[str, float]]:
        """Top-1 accuracy (%) on the whole clean test set of the scored network, and of each
        network a method trains side by side (`predict_each`; empty for one), in one pass over
        the test images."""
        each = type(method).predict_each is not Method.predict_each

        def predict(images: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"": method.predict(images), **(method.predict_each(images) if each else {})}

        scored = self._accuracies(predict, self.views.test, self.y_test, method)
        return scored.pop(""), scored

    @torch.no_grad()
    def evaluate_more(self, method: Method) -> dict[str, float]:
        """Accuracy (%) on each of the dataset's further clean evaluation sets, by name."""
        return {
            name: self._accuracy(method, source, labels)
            for name, (source, labels) in self.views.more.items()
        }

    @torch.no_grad()
    def evaluate_validation(self, method: Method) -> float | None:
        """Accuracy (%) on the validation split against its labels (the held-out split's noisy
        ones, or the dataset's own validation labels); None without a split."""
        if not self.has_validation:
            return None
        return self._accuracy(method, self.views.val, self.val_labels)

    def _accuracy(self, method: Method, source: ImageSource, labels: torch.Tensor) -> float:
        scored = self._accuracies(lambda x: {"": method.predict(x)}, source, labels, method)
        return scored[""]

    def _accuracies(
        self,
        predict: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        source: ImageSource,
        labels: torch.Tensor,
        method: Method,
    ) -> dict[str, float]:
        method.train_mode(False)
        correct: dict[str, torch.Tensor] = {}
        chunks = in_order(len(source), self.options.eval_batch_size)
        with self.ctx.autocast():
            for chunk, images in zip(chunks, source.batches(chunks)):
                truth = labels[chunk.to(self.device)]
                for name, logits in predict(self.views.make(images, "none")).items():
                    hits = (logits.argmax(1) == truth).sum()
                    correct[name] = correct.get(name, 0) + hits
        method.train_mode(True)
        return {k: round(100.0 * float(v) / max(1, len(labels)), 4) for k, v in correct.items()}

    def fit(
        self,
        method_cls: type[Method],
        hp: MethodHParams,
        describe: str = "",
        checkpoint: Path | None = None,
        position: int = 0,
        on_epoch: Callable[[dict[str, Any], int], None] | None = None,
        before_training: Callable[[Method], None] | None = None,
        stop_after: int | None = None,
    ) -> FitResult:
        """Train `method_cls` with its validated hyperparameters `hp` (validated once, where the
        run's spec was resolved) for its epochs; `on_epoch(entry, epochs)` sees each finished epoch
        (the runner logs it), and a checkpoint, when given, is resumed from and kept up to date.
        `before_training(method)` sees the built (and resumed) method before the first step: the
        runner checks there that the run's record and checkpoints will fit, and may stop it.
        `stop_after` ends the run after that many epochs, its recipe (schedules, stages) left as
        the full run has it: `perf` times the first epochs of the run a sweep would train."""
        try:
            method = self.build(method_cls, hp)
        except Exception as exc:  # the runner checked the configuration: this is a failed run
            raise RunFailed(f"{type(exc).__name__}: {exc}", 0, []) from exc
        method.train_mode(True)
        start, epochs, resumed = 0, [], None
        if checkpoint is not None and checkpoint.exists():
            start, epochs = load_checkpoint(checkpoint, method, self.streams())
            resumed = start
        if before_training is not None:
            before_training(method)
        train_seconds, seen_total = 0.0, 0
        last = hp.epochs if stop_after is None else min(hp.epochs, stop_after)
        estimates: dict[str, list[list[float]]] = {}
        bar = tqdm(
            total=last,
            initial=start,
            desc=describe,
            position=position,
            leave=False,
            disable=not self.options.progress,
            dynamic_ncols=True,
        )
        try:
            for epoch in range(start, last):
                t0 = time.perf_counter()
                try:
                    self.ctx.pool = self.epoch_pool(epoch)
                    plan = method.begin_epoch(epoch)
                    self._sync()
                    t1 = time.perf_counter()
                    losses, seen = train_epoch(
                        method, plan, self.views, self.sample_gen, self.device
                    )
                    self._sync()
                except Exception as exc:  # a method's crash is a failed run, not a dead sweep
                    raise RunFailed(f"{type(exc).__name__}: {exc}", epoch, epochs) from exc
                t2 = time.perf_counter()
                bad = [k for k, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise RunFailed(f"loss '{bad[0]}' is {losses[bad[0]]}", epoch, epochs)
                try:
                    acc, each = self.evaluate(method)
                    more = self.evaluate_more(method)
                    val_acc = self.evaluate_validation(method)
                    t3 = time.perf_counter()
                    found = method.diagnostics()
                    diag = (
                        score_diagnostics(found, self.noisy, self.clean)
                        if self.dataset.clean_train
                        else {}
                    )
                    if found is not None and found.assumed_noise_rate is not None:
                        diag["assumed_noise_rate"] = round(float(found.assumed_noise_rate), 6)
                    if found is not None and found.transition is not None:
                        estimates["transition"] = found.transition.float().cpu().tolist()
                    method.end_epoch(epoch)
                except Exception as exc:
                    raise RunFailed(f"{type(exc).__name__}: {exc}", epoch, epochs) from exc
                train_seconds += t2 - t1
                seen_total += seen
                epochs.append(
                    EpochLog(
                        epoch=epoch,
                        phase=plan.phase,
                        pass_phases=(
                            [p.phase for p in plan.passes()] if plan.followed_by is not None else []
                        ),
                        interim=plan.interim,
                        losses={k: round(v, 6) for k, v in losses.items()},
                        test_acc=acc,
                        network_acc=each,
                        more_test_acc=more,
                        noisy_val_acc=val_acc,
                        diagnostics=diag,
                        seconds={
                            "selection": round(t1 - t0, 4),
                            "train": round(t2 - t1, 4),
                            "eval": round(t3 - t2, 4),
                        },
                        images_per_second=round(seen / max(t2 - t1, 1e-9), 1),
                    )
                )
                bar.update(1)
                bar.set_postfix(acc=f"{acc:.1f}")
                if on_epoch is not None:
                    on_epoch(epochs[-1], hp.epochs)
                every = self.options.checkpoint_every
                if (
                    checkpoint is not None
                    and every
                    and (epoch + 1) % every == 0
                    and epoch + 1 < hp.epochs
                ):
                    save_checkpoint(checkpoint, method, epoch, epochs, self.streams())
        finally:
            bar.close()
        return FitResult(
            epochs,
            method.scored_network,
            train_seconds,
            seen_total,
            resumed,
            dict(self.switches),
            estimates,
        )

    def streams(self) -> RunStreams:
        """The run's random streams, as a checkpoint holds them."""
        return RunStreams(self.sample_gen, self.view_gen, self.method_gen, self.rng, self.device)

    def epoch_pool(self, epoch: int) -> torch.Tensor | None:
        """The epoch's training pool when the dataset subsamples per epoch (None otherwise): a
        class-balanced draw by noisy label (`data.image_files.class_balanced_subsample`), seeded by
        (run seed, epoch) so it reproduces and a resumed run draws the same pools."""
        if not self.dataset.epoch_samples:
            return None
        rng = np.random.default_rng([self.seed, epoch])
        labels = self.noisy.cpu().numpy()
        pool = class_balanced_subsample(
            labels, self.dataset.epoch_samples, self.dataset.num_classes, rng
        )
        return torch.from_numpy(pool).to(self.device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

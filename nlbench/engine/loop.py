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
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from nlbench.data.dataset import Dataset, EvalSet, Images
from nlbench.data.image_files import class_balanced_subsample
from nlbench.data.noise import NoiseFacts, NoisyLabels, realised_transition
from nlbench.engine.images import ImageSource, image_source, in_order, take
from nlbench.engine.sampling import StreamSampler
from nlbench.errors import ConfigError, StorageError, write_failure
from nlbench.methods.api import Diagnostics, Method, MethodHParams
from nlbench.methods.api.context import MethodContext
from nlbench.methods.api.plan import EpochPlan, StreamBatch
from nlbench.methods.toolkit.neighbours import NeighbourIndex
from nlbench.methods.toolkit.networks import build_network
from nlbench.methods.toolkit.views import make_view


class EngineOptions(BaseModel):
    """Engine switches (a suite's `engine:` section); each optimisation can be turned off to
    measure its effect."""

    model_config = ConfigDict(extra="forbid")

    amp: bool = True
    channels_last: bool = True
    cudnn_benchmark: bool = True
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    neighbour_backend: Literal["auto", "faiss", "torch"] = "auto"
    eval_batch_size: int = Field(1024, ge=1)
    checkpoint_every: int = Field(0, ge=0)
    """Save a checkpoint every N epochs (0: never)."""
    progress: bool = True
    cpu_threads: int = Field(1, ge=1)
    """torch's CPU threads for each run, whatever executor runs it: the thread count changes the
    order of floating-point sums on the CPU, so it is part of the run (and of its id when not 1)."""
    data_workers: int = Field(2, ge=0)
    """Processes decoding a streamed dataset's images (0: the run's own process). Decoding is
    deterministic, so this changes speed, never numbers, and is not part of a run's id."""


CHECKPOINT_GROWTH = 3
"""A checkpoint's size as a multiple of a freshly built method's state: optimisers add their
moment buffers (up to two per weight, as Adam keeps) after the first step."""


def checkpoint_bytes(method: Method) -> int:
    """About how large the method's checkpoints will be, from its state before training."""

    def tensor_bytes(part: Any) -> int:
        if isinstance(part, torch.Tensor):
            return part.numel() * part.element_size()
        if isinstance(part, dict):
            return sum(map(tensor_bytes, part.values()))
        if isinstance(part, (list, tuple)):
            return sum(map(tensor_bytes, part))
        return 0

    return CHECKPOINT_GROWTH * tensor_bytes(method.state_dict())


class RunFailed(Exception):
    """A run that cannot go on (a non-finite loss, an exception in the method): recorded as data."""

    def __init__(self, reason: str, epoch: int, epochs: list[dict[str, Any]]) -> None:
        super().__init__(reason)
        self.reason, self.epoch, self.epochs = reason, epoch, epochs


@dataclass
class FitResult:
    """What the engine measured; the runner wraps it into a record."""

    epochs: list[dict[str, Any]]
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


class _Views:
    """The run's image sources (`engine.images`: on the device, or streamed from disk) and the
    normalised augmented views built from their uint8 batches on the device."""

    def __init__(
        self,
        dataset: Dataset,
        device: torch.device,
        generator: torch.Generator,
        channels_last: bool,
        train_rows: np.ndarray,
        val_images: Images,
        workers: int,
    ) -> None:
        self.train = image_source(take(dataset.x_train, train_rows), device, workers)
        self.val = image_source(val_images, device, workers)
        self.test = image_source(dataset.x_test, device, workers)
        self.more = {
            more.name: (
                image_source(more.images, device, workers),
                torch.from_numpy(more.labels).long().to(device),
            )
            for more in dataset.more_tests
        }
        self.dataset_stats = (dataset.mean, dataset.std)
        self.mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)
        self.augment = dataset.augment
        self.generator = generator
        self.channels_last = channels_last

    def scale_inputs(self, hp: MethodHParams, channels: int) -> None:
        """Put the method's input scaling in force (`MethodHParams.inputs`): unit pixels are
        x / 255, i.e. mean 0 and std 1 after `ToTensor`; normalised ones use the official
        constants where the recipe gives them, else the dataset's measured statistics."""
        if hp.inputs == "unit":
            mean, std = (0.0,) * channels, (1.0,) * channels
        elif hp.input_stats is not None:
            mean, std = hp.input_stats
            if len(mean) != channels or len(std) != channels:
                raise ConfigError(
                    f"input_stats has {len(mean)} means and {len(std)} stds for images of "
                    f"{channels} channels; give one value per channel"
                )
        else:
            mean, std = self.dataset_stats
        device = self.mean.device
        self.mean = torch.tensor(mean, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device, dtype=torch.float32).view(1, -1, 1, 1)

    def make(self, images: torch.Tensor, view: str) -> torch.Tensor:
        return make_view(
            images,
            view,
            self.augment,
            self.mean,
            self.std,
            self.generator,
            channels_last=self.channels_last,
        )


def transition_of(noisy: torch.Tensor, clean: torch.Tensor, classes: int) -> torch.Tensor:
    """The realised transition matrix of these labels (`data.noise.realised_transition`)."""
    counts = (clean.cpu() * classes + noisy.cpu()).bincount(minlength=classes * classes)
    matrix = realised_transition(counts.view(classes, classes).numpy())
    return torch.from_numpy(matrix).float().to(noisy.device)


def score_diagnostics(
    diag: Diagnostics | None, noisy: torch.Tensor, clean: torch.Tensor
) -> dict[str, float]:
    """Selection precision/recall, relabel accuracy and transition error against the clean labels.

    A selected sample counts as correct when the label the method trains it with equals the clean
    label; recall is over all samples whose (possibly corrected) label is correct. Flagged samples
    score noise detection: precision = flagged and truly mislabelled / flagged, recall = flagged
    and truly mislabelled / truly mislabelled. A transition estimate scores its mean absolute
    entry error against the realised matrix.
    """
    if diag is None:
        return {}
    out: dict[str, torch.Tensor] = {}
    if diag.flagged is not None:
        flagged = diag.flagged.to(noisy.device).bool()
        wrong = noisy != clean
        caught = (flagged & wrong).sum().float()
        out["fraction_flagged"] = flagged.float().mean()
        if flagged.any():  # precision of an empty set is undefined, not 0
            out["detection_precision"] = caught / flagged.sum()
        out["detection_recall"] = caught / wrong.sum().clamp(min=1)
    if diag.transition is not None:
        estimate = diag.transition.to(noisy.device).float()
        truth = transition_of(noisy, clean, estimate.shape[0])
        out["transition_error"] = (estimate - truth).abs().mean()
    labels = noisy if diag.labels is None else diag.labels.to(noisy.device)
    correct = labels == clean
    if diag.labels is not None:
        out["relabel_accuracy"] = correct.float().mean()
        out["relabelled_fraction"] = (labels != noisy).float().mean()
    if diag.selected is not None:
        sel = diag.selected.to(noisy.device).bool()
        hits = (sel & correct).sum().float()
        out["fraction_selected"] = sel.float().mean()
        out["selection_precision"] = hits / sel.sum().clamp(min=1)
        out["selection_recall"] = hits / correct.sum().clamp(min=1)
    return {k: round(float(v), 6) for k, v in out.items()}


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


def _unbound_feature_pass(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the engine binds the feature pass once the context exists")


@torch.no_grad()
def _feature_pass(
    views: _Views,
    autocast: Callable[[], Any],
    default_batch: int,
    fn: Callable[[torch.Tensor], Any],
    view: str = "weak",
    batch_size: int | None = None,
    rows: torch.Tensor | None = None,
) -> Any:
    """Apply `fn` to every training image in index order, or to the images at `rows` in their
    order (an epoch's pool); the method sets train/eval mode. Outputs (a tensor or a tuple of
    them) come back as float32.

    The outputs go into tensors allocated once, after the first batch: keeping a small tensor
    per batch between each batch's large, freed temporaries made glibc's heap grow with the
    dataset on the CPU (+660 MiB over 18,000 64x64 images, measured)."""
    size = batch_size or default_batch
    chunks = in_order(len(views.train), size) if rows is None else list(rows.cpu().split(size))
    total = sum(len(chunk) for chunk in chunks)
    results: tuple[torch.Tensor, ...] = ()
    single, start = False, 0
    with autocast():
        for images in views.train.batches(chunks):
            out = fn(views.make(images, view))
            single = not isinstance(out, tuple)
            parts = (out,) if single else out
            if not results:
                results = tuple(torch.empty((total, *p.shape[1:]), device=p.device) for p in parts)
            for result, part in zip(results, parts):
                result[start : start + len(part)] = part.float()
            start += len(parts[0])
    return results[0] if single else results


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
        self.views = _Views(dataset, device, self.view_gen, self.switches["channels_last"],
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
            features=_unbound_feature_pass,
            neighbour_index=functools.partial(
                NeighbourIndex.build, backend=options.neighbour_backend
            ),
            amp_dtype=amp_dtype,
            pool_size=dataset.epoch_samples,
        )
        # The feature pass reads the context's precision when it runs, so the pass and the training
        # steps always share one setting.
        self.ctx.features = functools.partial(
            _feature_pass, self.views, self.ctx.autocast, options.eval_batch_size
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

    def _train_epoch(self, method: Method, plan: EpochPlan) -> tuple[dict[str, float], int]:
        """Every pass of the epoch's plan in order; each loss is averaged over the steps that
        reported it."""
        totals: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        seen = sum(self._train_pass(method, one, totals, counts) for one in plan.passes())
        return {k: float(v) / counts[k] for k, v in totals.items()}, seen

    def _train_pass(
        self,
        method: Method,
        plan: EpochPlan,
        totals: dict[str, torch.Tensor],
        counts: dict[str, int],
    ) -> int:
        samplers = {
            name: StreamSampler(s, self.dataset.num_classes, self.sample_gen)
            for name, s in plan.streams.items()
        }
        sets_length = plan.length_from or next(iter(samplers))
        steps = plan.steps or samplers[sets_length].batches_per_pass
        # Every step's ids are drawn before the first step (the sampler's stream is its own, so
        # the ids are the same as drawn step by step); a streamed source decodes them ahead.
        drawn = [{name: s.next_ids() for name, s in samplers.items()} for _ in range(steps)]
        joined = [torch.cat(list(step.values())) for step in drawn]
        seen = 0
        for step, images in zip(drawn, self.views.train.batches(joined)):
            ids = {name: step_ids.to(self.device) for name, step_ids in step.items()}
            parts = images.split([len(step_ids) for step_ids in step.values()])
            views = self._build_views(plan, dict(zip(step, parts)))
            batch = {
                name: StreamBatch(ids[name], plan.streams[name].labels[ids[name]], views[name])
                for name in plan.streams
            }
            seen += sum(len(ids[name]) * len(views[name]) for name in plan.streams)
            losses = (
                method.train_step(batch) if plan.tag is None else method.train_step(batch, plan.tag)
            )
            for key, value in losses.items():
                totals[key] = totals.get(key, 0) + value.detach().float()
                counts[key] = counts.get(key, 0) + 1
        return seen

    def _build_views(
        self, plan: EpochPlan, images_of: dict[str, torch.Tensor]
    ) -> dict[str, list[torch.Tensor]]:
        """All views of one step, one augmentation call per view kind across every stream.

        SSR asks for three strong views a step (two of the selected batch, one of the all-samples
        batch); per-sample AutoAugment costs a fixed few hundred kernel launches a call whatever
        the batch size, so one call on the concatenated images is cheaper than three, and every
        image still draws its own augmentation.
        """
        requests: dict[str, list[tuple[str, int, torch.Tensor]]] = {}
        for name, stream in plan.streams.items():
            images = images_of[name]
            for slot, view in enumerate(stream.views):
                requests.setdefault(view, []).append((name, slot, images))
        built = {name: [torch.empty(0)] * len(s.views) for name, s in plan.streams.items()}
        for view, parts in requests.items():
            made = self.views.make(torch.cat([images for _, _, images in parts]), view)
            pieces = made.split([len(images) for _, _, images in parts])
            for (name, slot, _), piece in zip(parts, pieces):
                built[name][slot] = piece
        return built

    def _save(self, path: Path, method: Method, epoch: int, epochs: list[dict[str, Any]]) -> None:
        state = {
            "epoch": epoch,
            "epochs": epochs,
            "method": method.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": self.rng.bit_generator.state,
                "sample": self.sample_gen.get_state(),
                "view": self.view_gen.get_state(),
                "method": self.method_gen.get_state(),
                "python": random.getstate(),
                "np_global": np.random.get_state(),
                "cuda": (
                    torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
                ),
            },
        }
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            tmp.unlink(missing_ok=True)
            raise StorageError(
                f"could not write the checkpoint {path} ({write_failure(exc)})"
            ) from None

    def _resume(self, path: Path, method: Method) -> tuple[int, list[dict[str, Any]]]:
        state = torch.load(path, map_location=self.device, weights_only=False)
        method.load_state_dict(state["method"])
        rng = state["rng"]
        # map_location also moved the RNG states to the device; torch takes them only on the CPU.
        torch.set_rng_state(rng["torch"].cpu())
        self.rng.bit_generator.state = rng["numpy"]
        self.sample_gen.set_state(rng["sample"].cpu())
        self.view_gen.set_state(rng["view"].cpu())
        self.method_gen.set_state(rng["method"].cpu())
        if rng.get("cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        random.setstate(rng["python"])
        np.random.set_state(rng["np_global"])
        return state["epoch"] + 1, state["epochs"]

    def fit(
        self,
        method_cls: type[Method],
        hparams: dict[str, Any],
        describe: str = "",
        checkpoint: Path | None = None,
        position: int = 0,
        on_epoch: Callable[[dict[str, Any], int], None] | None = None,
        before_training: Callable[[Method], None] | None = None,
    ) -> FitResult:
        """Train `method_cls` for its epochs; `on_epoch(entry, epochs)` sees each finished epoch
        (the runner logs it), and a checkpoint, when given, is resumed from and kept up to date.
        `before_training(method)` sees the built (and resumed) method before the first step: the
        runner checks there that the run's record and checkpoints will fit, and may stop it."""
        hp = method_cls.HParams.model_validate(hparams)
        try:
            method = self.build(method_cls, hp)
        except Exception as exc:  # the runner checked the configuration: this is a failed run
            raise RunFailed(f"{type(exc).__name__}: {exc}", 0, []) from exc
        method.train_mode(True)
        start, epochs, resumed = 0, [], None
        if checkpoint is not None and checkpoint.exists():
            start, epochs = self._resume(checkpoint, method)
            resumed = start
        if before_training is not None:
            before_training(method)
        train_seconds, seen_total = 0.0, 0
        estimates: dict[str, list[list[float]]] = {}
        bar = tqdm(
            total=hp.epochs,
            initial=start,
            desc=describe,
            position=position,
            leave=False,
            disable=not self.options.progress,
            dynamic_ncols=True,
        )
        try:
            for epoch in range(start, hp.epochs):
                t0 = time.perf_counter()
                try:
                    self.ctx.pool = self.epoch_pool(epoch)
                    plan = method.begin_epoch(epoch)
                    self._sync()
                    t1 = time.perf_counter()
                    losses, seen = self._train_epoch(method, plan)
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
                    {
                        "epoch": epoch,
                        "phase": plan.phase,
                        **(
                            {"pass_phases": [p.phase for p in plan.passes()]}
                            if plan.followed_by is not None
                            else {}
                        ),  # fmt: skip
                        **({"interim": True} if plan.interim else {}),
                        "losses": {k: round(v, 6) for k, v in losses.items()},
                        "test_acc": acc,
                        **({"network_acc": each} if each else {}),
                        **({"more_test_acc": more} if more else {}),
                        **({} if val_acc is None else {"noisy_val_acc": val_acc}),
                        "diagnostics": diag,
                        "seconds": {
                            "selection": round(t1 - t0, 4),
                            "train": round(t2 - t1, 4),
                            "eval": round(t3 - t2, 4),
                        },
                        "images_per_second": round(seen / max(t2 - t1, 1e-9), 1),
                    }
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
                    self._save(checkpoint, method, epoch, epochs)
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

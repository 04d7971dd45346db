"""One epoch's training: each pass of the method's plan, its streams sampled up front, the
batches' views built on the device in one call per view kind, and the method's steps."""

from __future__ import annotations

import torch

from nlbench.engine.sampling import StreamSampler
from nlbench.engine.views import RunViews
from nlbench.methods.api import Method
from nlbench.methods.api.plan import EpochPlan, StreamBatch


def train_epoch(
    method: Method,
    plan: EpochPlan,
    views: RunViews,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[dict[str, float], int]:
    """Every pass of the epoch's plan in order; each loss is averaged over the steps that
    reported it. Returns the losses and the images seen (each view counted)."""
    totals: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    seen, one = 0, plan
    while one is not None:
        seen += _train_pass(method, one, views, generator, device, totals, counts)
        if one.then is not None:  # planned now that the pass before it has trained
            one.followed_by, one.then = one.then(), None
        one = one.followed_by
    return {k: float(v) / counts[k] for k, v in totals.items()}, seen


def _train_pass(
    method: Method,
    plan: EpochPlan,
    views: RunViews,
    generator: torch.Generator,
    device: torch.device,
    totals: dict[str, torch.Tensor],
    counts: dict[str, int],
) -> int:
    samplers = {
        name: StreamSampler(s, views.num_classes, generator) for name, s in plan.streams.items()
    }
    sets_length = plan.length_from or next(iter(samplers))
    steps = plan.steps or samplers[sets_length].batches_per_pass
    # Every step's ids are drawn before the first step (the sampler's stream is its own, so
    # the ids are the same as drawn step by step); a streamed source decodes them ahead.
    drawn = [{name: s.next_ids() for name, s in samplers.items()} for _ in range(steps)]
    joined = [torch.cat(list(step.values())) for step in drawn]
    seen = 0
    for step, images in zip(drawn, views.train.batches(joined)):
        ids = {name: step_ids.to(device) for name, step_ids in step.items()}
        parts = images.split([len(step_ids) for step_ids in step.values()])
        made = build_views(plan, views, dict(zip(step, parts)))
        batch = {
            name: StreamBatch(ids[name], plan.streams[name].labels[ids[name]], made[name])
            for name in plan.streams
        }
        seen += sum(len(ids[name]) * len(made[name]) for name in plan.streams)
        losses = (
            method.train_step(batch) if plan.tag is None else method.train_step(batch, plan.tag)
        )
        for key, value in losses.items():
            totals[key] = totals.get(key, 0) + value.detach().float()
            counts[key] = counts.get(key, 0) + 1
    return seen


def build_views(
    plan: EpochPlan, views: RunViews, images_of: dict[str, torch.Tensor]
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
        made = views.make(torch.cat([images for _, _, images in parts]), view)
        pieces = made.split([len(images) for _, _, images in parts])
        for (name, slot, _), piece in zip(parts, pieces):
            built[name][slot] = piece
    return built

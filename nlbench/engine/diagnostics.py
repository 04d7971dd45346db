"""A method's diagnostics scored against the clean training labels, which only the engine holds
(the method context never sees them): selection precision and recall, noise detection, relabel
accuracy, transition-estimate error."""

from __future__ import annotations

import torch

from nlbench.data.noise import realised_transition
from nlbench.methods.api import Diagnostics


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

"""User-facing errors: each carries one line that names the culprit and how to fix it.

The CLI catches `NlbenchError` and prints the message alone, so a bad suite or a missing folder
never surfaces as a traceback from deep inside torch. This module is the bottom of the import
graph: every layer may raise these, and it imports nothing of nlbench.
"""

import difflib
from collections.abc import Iterable


class NlbenchError(Exception):
    """Base of every error the CLI reports as a single line with a non-zero exit."""


class ConfigError(NlbenchError):
    """A suite, an override or a command-line flag that is not valid."""


class DataError(NlbenchError, ValueError):
    """A dataset or noise request that cannot be honoured (a missing file, a bad option)."""


class StorageError(NlbenchError):
    """A record, checkpoint or log that could not be written, or a results folder without room
    for the next run. The sweep stops handing out runs at once: every run trained after it would
    be lost the same way. The message says what failed; the sweep adds what is still stored."""


ALIASES = {
    "learning_rate": "lr",
    "lr_rate": "lr",
    "wd": "weight_decay",
    "decay": "weight_decay",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "epoch": "epochs",
    "bs": "batch_size",
    "batchsize": "batch_size",
    "arch": "network",
    "model": "network",
    "net": "network",
    "backbone": "network",
    "seed": "seeds",
    "method": "methods",
    "dataset": "datasets",
    "ratio": "ratios",
    "noise_rate": "ratios",
    "noise_ratio": "ratios",
}
"""Names other code bases use for ours: spelling distance alone would send `learning_rate` to
`eta_min_ratio`. A hint follows an alias only where its target is one of the valid names."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint for the valid name `word` is a known alias of, else the
    closest one by spelling, or '' when none is close."""
    choices = list(choices)
    alias = ALIASES.get(word.lower())
    if alias in choices:
        return f" (did you mean '{alias}'?)"
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def write_failure(exc: BaseException) -> str:
    """Why a write failed, in a few words ("No space left on device"), for a StorageError line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

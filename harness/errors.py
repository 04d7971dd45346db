"""User-facing errors: each carries one line that names the culprit and how to fix it.

The CLI catches these (and `data.errors.DataError`) and prints the message alone, so a bad suite or
a missing folder never surfaces as a traceback from deep inside torch.
"""

import difflib
from collections.abc import Iterable


class NlbenchError(Exception):
    """Base of every error the CLI reports as a single line with a non-zero exit."""


class ConfigError(NlbenchError):
    """A suite, an override or a command-line flag that is not valid."""


class RecordError(NlbenchError):
    """A stored run record that cannot be read (corrupt, truncated, wrong schema)."""


def nearest(word: str, options: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint for the closest valid option, or '' when none is close."""
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""

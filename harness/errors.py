"""User-facing errors: each carries one line that names the culprit and how to fix it.

The CLI catches these (and `data.errors.DataError`) and prints the message alone, so a bad suite or
a missing folder never surfaces as a traceback from deep inside torch.
"""

from data.errors import did_you_mean


class NlbenchError(Exception):
    """Base of every error the CLI reports as a single line with a non-zero exit."""


class ConfigError(NlbenchError):
    """A suite, an override or a command-line flag that is not valid."""


nearest = did_you_mean
"""A ' (did you mean X?)' hint for the closest valid option (shared with the data layer)."""

"""The one error type of the data layer, and the did-you-mean hint every error message uses."""

import difflib
from collections.abc import Iterable


class DataError(ValueError):
    """A dataset or noise request that cannot be honoured.

    The message names the culprit (the key, the path, the value) and says how to fix it, because the
    CLI prints it as the single line a user sees.
    """


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint for the closest valid name, or '' when none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""

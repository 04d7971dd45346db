"""The one error type of the data layer: bad user input about datasets or noise."""


class DataError(ValueError):
    """A dataset or noise request that cannot be honoured.

    The message names the culprit (the key, the path, the value) and says how to fix it, because the
    CLI prints it as the single line a user sees.
    """

"""The one error type the `fiftynet` commands turn into a one-line message and exit code 2."""


class UsageError(ValueError):
    """Bad input from the user (a missing file, an unknown field, ...): reported without a traceback."""

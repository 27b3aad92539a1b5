"""The one error type the `fiftynet` commands turn into a one-line message and exit code 2.

It lives here, in the lowest of the project's packages (`fiftynet.training` and `fiftynet.conversion` build on
`fiftynet.hub_cards`, never the reverse), so that `fiftynet push` raises the very class the dispatcher catches while
`fiftynet.hub_cards` imports nothing of `fiftynet.training`. `fiftynet.training.errors` re-exports it.
"""


class UsageError(ValueError):
    """Bad input from the user (a missing file, an unknown field, ...): reported without a traceback."""

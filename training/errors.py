"""The one error type the `fiftynet` commands turn into a one-line message and exit code 2, and the check every
command that writes a folder makes before it starts.

`UsageError` is defined in `fiftynet.hub_cards.errors` (so that `fiftynet push` raises it without importing
`fiftynet.training`) and re-exported here: one class, whichever module names it.
"""

import argparse
from pathlib import Path

from fiftynet.hub_cards.errors import UsageError


__all__ = ["UsageError", "non_negative_int", "positive_float", "positive_int", "refuse_non_empty"]


def refuse_non_empty(folder: str | Path, option: str, how_to_continue: str = "") -> None:
    """Raises a `UsageError` if `folder` holds anything: a command writes a new folder, never over a user's model or
    run unless asked with --overwrite_output_dir. `how_to_continue` is offered first (e.g. how to resume it)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder} is a file, not a folder")
    held = sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []
    if held:
        more = ", ..." if len(held) > 4 else ""
        raise UsageError(f"{option} {folder} is not empty (it holds {', '.join(held[:4])}{more}): {how_to_continue}"
                         f"choose another {option}, or pass --overwrite_output_dir to replace it")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count of steps, tokens or layers)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0 (a learning rate)."""
    value = float(text)
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value

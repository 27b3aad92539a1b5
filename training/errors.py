"""The one error type the `fiftynet` commands turn into a one-line message and exit code 2, and the checks every
command that writes a folder makes before it starts: that the folder is its own (`claimed`) and holds nothing a user
did not ask to replace (`refuse_non_empty`).

`UsageError` is defined in `fiftynet.hub_cards.errors` (so that `fiftynet push` raises it without importing
`fiftynet.training`) and re-exported here: one class, whichever module names it.
"""

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock (see `claimed`)
    fcntl = None

from fiftynet.hub_cards.errors import UsageError


__all__ = ["UsageError", "claimed", "non_negative_int", "positive_float", "positive_int", "refuse_non_empty"]


def _folder_or_nothing(folder: str | Path, option: str) -> Path:
    """`folder` as a Path; a `UsageError` if a file (or anything but a folder) already has its name."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder} is a file, not a folder")
    return folder


@contextmanager
def claimed(folder: str | Path, option: str, is_writer: bool = True) -> Iterator[Path]:
    """Holds `folder` (created if missing) for this command while the block runs: another command given the same
    folder meanwhile gets a `UsageError` instead of writing its run over this one.

    The lock is an exclusive `flock(2)` on the folder itself, so the folder holds no lock file to skip or clean up,
    and the kernel releases it when the process ends however it ends: a killed command leaves no stale lock. Only the
    process that writes takes it (`is_writer`: rank 0 of a distributed run; the others write nothing). File systems
    without flock (some network mounts) and Windows are not locked. A folder this created is removed again if the
    block leaves it empty (a command that stopped on bad input leaves nothing behind).
    """
    folder = _folder_or_nothing(folder, option)
    if not is_writer or fcntl is None:
        yield folder
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise UsageError(f"{option} {folder} is in use by another fiftynet command that is still running: wait for "
                         f"it to end, or choose another {option}") from None
    except OSError:  # the file system has no flock
        pass
    try:
        # A command in a folder inside another's (its model/, say), or around it, would write into that run too.
        parents = folder.resolve().parents
        nested = [*parents, *(Path(root) for root, _, _ in os.walk(folder) if Path(root) != folder)]
        if user := next((other for other in nested if _in_use(other)), None):
            where = "is inside" if user in parents else "holds"
            raise UsageError(f"{option} {folder} {where} {user}, which another fiftynet command that is still "
                             f"running uses: wait for it to end, or choose another {option}")
        yield folder
    finally:
        if created and folder.is_dir() and not any(folder.iterdir()):  # while holding it: nobody else uses it
            folder.rmdir()
        os.close(descriptor)  # releases the lock


def _in_use(folder: Path) -> bool:
    """Whether another process holds `folder` through `claimed` (a shared lock cannot be had); False where it cannot
    be told (no permission to open it, no flock)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)  # releases the shared lock, if it was had


def refuse_non_empty(folder: str | Path, option: str, how_to_continue: str = "") -> None:
    """Raises a `UsageError` if `folder` holds anything: a command writes a new folder, never over a user's model or
    run unless asked with --overwrite_output_dir. `how_to_continue` is offered first (e.g. how to resume it)."""
    folder = _folder_or_nothing(folder, option)
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

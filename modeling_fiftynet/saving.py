"""Saves that never leave a model folder half-written.

`staged_folder(target)` gives an empty hidden folder inside `target` to write the whole save into. When the writing
succeeds, each file is renamed into `target` (`config.json` last, so a folder being filled is not yet a model), and
weight files of the same kind that this save did not write (stale shards) are removed; the other files of `target`
(a tokenizer, a card, your notes) stay. When the writing fails or is interrupted, `target` is left as it was and the
staged folder is removed. Renames never copy data, and SIGINT/SIGTERM are held while they run, so the moment when
the folder mixes two saves lasts a few system calls. The staged folder lives inside `target`, so `target` itself is
never renamed: it may be the working directory, a mount point (a container volume) or reached through a symlink. A
process killed while writing leaves a hidden `.fiftynet-partial-HOST-PID-*` folder in `target`, which loading
ignores and the next save into `target` removes once no process PID runs on HOST (a folder of another machine sharing
the file system, or of a running save, is left alone).
"""

import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


STAGING_PREFIX = ".fiftynet-partial-"
# Weight files as `save_pretrained` names them: `model[.VARIANT][-00001-of-00002].safetensors[.index.json]`.
WEIGHT_FILE = re.compile(r"model(?:\.(?P<variant>[\w-]+))?(?:-\d{5}-of-\d{5})?\.safetensors(?:\.index\.json)?")


@contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty folder to write into; its files replace those of `target` when the block succeeds, and it is
    removed either way.

    Raises:
        NotADirectoryError: `target` exists and is not a folder.
    """
    target = Path(os.path.realpath(target))  # through a symlink: the folder it points to
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a folder")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    remove_abandoned_stages(target)
    staged = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=target))
    succeeded = False
    try:
        yield staged
        give_default_modes(staged)
        with interrupts_held():
            move_into(staged, target)
        succeeded = True
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if created and not succeeded and not any(target.iterdir()):
            target.rmdir()


def remove_abandoned_stages(target: Path) -> None:
    """Removes the staged folders in `target` of saves on this machine whose process no longer runs (killed while
    writing: their files never became part of `target`)."""
    prefix = f"{STAGING_PREFIX}{socket.gethostname()}-"
    for staged in target.glob(f"{prefix}*"):
        pid = staged.name[len(prefix):].split("-", 1)[0]
        if staged.is_dir() and pid.isdigit() and not process_runs(int(pid)):
            shutil.rmtree(staged, ignore_errors=True)


def process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal is sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def give_default_modes(folder: Path) -> None:
    """Gives the files and folders under `folder` the modes new files get in this process (0644 and 0755 under the
    usual umask 022): safetensors writes its files readable by their owner only (0600), so a model saved on a
    shared machine or in a container could not be read by another user."""
    umask = os.umask(0)
    os.umask(umask)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def move_into(staged: Path, target: Path) -> None:
    """Renames every file of `staged` into `target` (merging folders, `config.json` last), then removes the weight
    files of `target` of a kind `staged` held (the same variant) that it did not hold."""
    written_variants = {match["variant"] for match in map(WEIGHT_FILE.fullmatch, os.listdir(staged)) if match}
    stale = [
        name for name in os.listdir(target)
        if (match := WEIGHT_FILE.fullmatch(name)) and match["variant"] in written_variants
        and not (staged / name).exists()
    ]
    for name in sorted(os.listdir(staged), key=lambda name: name == "config.json"):
        source, destination = staged / name, target / name
        if source.is_dir() and not source.is_symlink() and destination.is_dir():
            move_into(source, destination)
        else:
            os.replace(source, destination)
    for name in stale:
        (target / name).unlink()


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Holds SIGINT and SIGTERM until the block ends, then delivers the first one that came (in the main thread, where
    Python runs signal handlers; elsewhere the block runs as it is)."""
    signals = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not None]
    if threading.current_thread() is not threading.main_thread() or not signals:
        yield
        return
    received = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signal.raise_signal(received[0])

"""Saves that never leave a model folder half-written.

`staged_folder(target)` gives an empty hidden folder inside `target` to write the whole save into. When the writing
succeeds, the folder is committed: a list of its files is written into it and it is renamed (one atomic step) from
`.fiftynet-partial-*` to `.fiftynet-commit-*`. Then each file is renamed into `target` (`config.json` last, so a
folder being filled is not yet a model), weight files of the same kind that this save did not write (stale shards) are
removed, and the commit folder goes; the other files of `target` (a tokenizer, a card, your notes) stay. When the
writing fails or is interrupted, `target` is left as it was and the staged folder is removed. Renames never copy data,
and SIGINT/SIGTERM are held while they run.

A process killed (SIGKILL, power cut of the process) leaves a hidden folder in `target`:
- `.fiftynet-partial-HOST-PID-*`, killed while writing: its files never became part of `target`; loading ignores it
  and the next save into `target` removes it;
- `.fiftynet-commit-HOST-PID-*`, killed while moving a complete save in (new weights may sit beside the old
  config): the next save into `target`, and the next load of it (`FiftyNetConfig` / `FiftyNetPreTrainedModel`
  `.from_pretrained`), finish the move, so the folder holds the new save whole (`finish_interrupted_saves`).
Either is left alone while process PID still runs on HOST (a save in progress); one of another machine sharing the
file system is left alone until it has not changed for `OTHER_HOST_GRACE_SECONDS`. The staged folder lives inside
`target`, so `target` itself is never renamed: it may be the working directory, a mount point (a container volume)
or reached through a symlink.
"""
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


STAGING_PREFIX = ".fiftynet-partial-"  # being written
COMMIT_PREFIX = ".fiftynet-commit-"  # complete, being moved in
MANIFEST = ".fiftynet-manifest.json"  # in a commit folder: the names of the save's files
# A save moves its files in within milliseconds: a commit folder of another machine unchanged this long is abandoned.
OTHER_HOST_GRACE_SECONDS = 600
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
    finish_interrupted_saves(target)  # an earlier save's files go in before this one's
    staged = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=target))
    succeeded = False
    try:
        yield staged
        give_default_modes(staged)
        with interrupts_held():
            (staged / MANIFEST).write_text(json.dumps(sorted(os.listdir(staged))))
            committed = staged.with_name(COMMIT_PREFIX + staged.name.removeprefix(STAGING_PREFIX))
            os.rename(staged, committed)  # from here on, a kill is finished by the next save or load
            move_committed(committed, target)
        succeeded = True
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if created and not succeeded and not any(target.iterdir()):
            target.rmdir()


def finish_interrupted_saves(target: str | os.PathLike) -> bool:
    """Finishes the saves into `target` that a killed process left behind: moves in the files of complete ones
    (`.fiftynet-commit-*`) and removes the others (`.fiftynet-partial-*`), leaving alone those of a save that may still
    run (see the module's docstring). Returns whether it moved files in (the folder's config may have changed)."""
    target, host, moved = Path(target), socket.gethostname(), False
    for folder in sorted(target.glob(".fiftynet-*-*")):
        kind = next((prefix for prefix in (STAGING_PREFIX, COMMIT_PREFIX) if folder.name.startswith(prefix)), None)
        if kind is None or not folder.is_dir() or may_still_run(folder, folder.name.removeprefix(kind), host):
            continue
        if kind == COMMIT_PREFIX and (folder / MANIFEST).is_file():
            try:
                move_committed(folder, target)
            except FileNotFoundError:  # another process finished it first
                pass
            moved = True
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return moved


def finish_before_loading(name_or_path: str | os.PathLike | None, subfolder: str | None = None) -> bool:
    """`finish_interrupted_saves` on a folder about to be loaded, so that its config and weights are one save's;
    nothing for a Hub id or a file, and a read-only copy is loaded as it is."""
    folder = Path(os.fspath(name_or_path or ""), subfolder or "")
    if not name_or_path or not folder.is_dir():
        return False
    try:
        return finish_interrupted_saves(folder)
    except OSError:
        return False


def may_still_run(folder: Path, owner: str, host: str) -> bool:
    """Whether the save that made `folder` (`owner`: "HOST-PID-RANDOM") may still be running."""
    if owner.startswith(f"{host}-"):
        pid = owner.removeprefix(f"{host}-").split("-", 1)[0]
        return not pid.isdigit() or process_runs(int(pid))
    return time.time() - folder.stat().st_mtime < OTHER_HOST_GRACE_SECONDS


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


def move_committed(committed: Path, target: Path) -> None:
    """Moves the files of the commit folder `committed` into `target` (see `move_into`), removes the weight files of
    `target` of a kind the save wrote (the same variant) that it did not write, then the commit folder. Safe to repeat
    after a kill, or to run twice at once: each step is done once whoever does it."""
    written = set(json.loads((committed / MANIFEST).read_text()))
    move_into(committed, target)
    written_variants = {match["variant"] for match in map(WEIGHT_FILE.fullmatch, written) if match}
    for name in os.listdir(target):
        match = WEIGHT_FILE.fullmatch(name)
        if match and match["variant"] in written_variants and name not in written:
            (target / name).unlink(missing_ok=True)
    shutil.rmtree(committed, ignore_errors=True)


def move_into(staged: Path, target: Path) -> None:
    """Renames every file of `staged` but its manifest into `target` (merging folders, `config.json` last); a file
    another process moved meanwhile is passed over."""
    for name in sorted(os.listdir(staged), key=lambda name: name == "config.json"):
        source, destination = staged / name, target / name
        if name == MANIFEST:
            continue
        if source.is_dir() and not source.is_symlink() and destination.is_dir():
            move_into(source, destination)
            continue
        try:
            os.replace(source, destination)
        except FileNotFoundError:
            if source.exists() or source.is_symlink():  # else it was moved by another process finishing this save
                raise


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

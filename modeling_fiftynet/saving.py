"""Folders written whole or not at all: a save that fails or is interrupted never leaves a half-written model.

`staged_folder(target)` gives a new folder beside `target` to write into. When the writing succeeds, the files of
`target` that were not rewritten are carried over (as `save_pretrained` keeps a tokenizer or a card saved beside the
weights), and the new folder takes the place of `target` by renaming. When it fails, `target` is left exactly as it
was and the staged folder is removed. A process killed while writing leaves a hidden `.NAME.*.partial` folder beside
`target`, never a mix of two saves.
"""

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


# Weight files that a new save replaces even when it does not rewrite them (a sharded save replaced by a single
# file, or the reverse), as `save_pretrained` itself deletes stale shards. Pickled weights are never ours to delete.
STALE_WEIGHTS = re.compile(r"model(\.[\w-]+)?(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?")


@contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yields an empty folder beside `target`; moves it into place when the block succeeds, removes it otherwise.

    Raises:
        NotADirectoryError: `target` exists and is a file.
    """
    target = Path(target).absolute()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    staged.mkdir()
    try:
        yield staged
        if target.exists():
            shutil.copymode(target, staged)
            carry_over(target, staged)
        replace_folder(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def carry_over(old: Path, new: Path) -> None:
    """Links (or copies) into `new` the entries of `old` it does not have, except stale weight files."""
    for entry in old.iterdir():
        if (new / entry.name).exists() or (entry.is_file() and STALE_WEIGHTS.fullmatch(entry.name)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(entry, new / entry.name)


def link_or_copy(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """A hard link where the file system allows one (no bytes are copied), else a copy."""
    if os.path.islink(source):
        os.symlink(os.readlink(source), destination)
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def replace_folder(staged: Path, target: Path) -> None:
    """Puts the finished folder `staged` at `target` by renaming, keeping the previous `target` until it is there."""
    if not target.exists():
        os.replace(staged, target)
        return
    previous = staged.with_suffix(".previous")
    os.replace(target, previous)
    os.replace(staged, target)
    shutil.rmtree(previous)

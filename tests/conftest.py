"""Shared test helpers.

`run_isolated` runs code in a fresh interpreter where this project cannot be imported, to check that a saved folder
loads as remote code (`trust_remote_code=True`) on its own, as it would for someone who only has the folder.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path


# What `pip install` puts in site-packages (see pyproject.toml), and the folders' bare names, which the repository root
# on `sys.path` would make importable.
PROJECT_PACKAGES = ("fiftynet", "modeling_fiftynet", "training", "conversion", "hub_cards")

# `python -I` already leaves the working directory and PYTHONPATH off `sys.path`, but an editable install still makes
# the project importable from site-packages; a finder placed first on `sys.meta_path` refuses it before any other.
BLOCK_PACKAGE_IMPORTS = f"""
import importlib.abc
import importlib.util
import sys


class _BlockProjectPackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {PROJECT_PACKAGES!r}:
            raise ImportError(f"{{name}} is blocked: this check must not see the project's packages")
        return None


sys.meta_path.insert(0, _BlockProjectPackages())
for _package in {PROJECT_PACKAGES!r}:
    try:
        importlib.util.find_spec(_package)
    except ImportError:
        continue
    raise AssertionError(f"{{_package}} is still importable")
"""


def run_isolated(code: str, cwd: str | os.PathLike) -> subprocess.CompletedProcess:
    """Runs `code` with `python -I` in `cwd`, offline, after `BLOCK_PACKAGE_IMPORTS`; returns the finished process.

    The Hugging Face cache (which holds the copied remote code) goes to `cwd/hf_home`, so runs never share it. Fails
    the calling test, showing the output, if the code exits with an error.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(Path(cwd) / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-I", "-c", BLOCK_PACKAGE_IMPORTS + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"isolated run failed:\n{result.stdout}\n{result.stderr}"
    return result

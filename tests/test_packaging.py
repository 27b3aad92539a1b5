"""What `pip install` puts in site-packages: `modeling_fiftynet` and the `fiftynet` namespace (`fiftynet.training`,
`fiftynet.conversion`, `fiftynet.hub_cards`), never a generic top-level name (`training`, ...) that the user's own
project may hold. The wheel is built offline from a copy of the sources, as a user's `pip install` would build it."""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from: pyproject.toml names these (README.md is the long description).
SOURCES = ("pyproject.toml", "README.md", "modeling_fiftynet", "training", "conversion", "hub_cards")
CORPUS_FILES = ("fiftynet/training/data/kjv_train.txt.xz", "fiftynet/training/data/kjv_validation.txt.xz")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # A copy, so that the build neither writes into the repository (build/, *.egg-info) nor packs a stale build/lib.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--wheel-dir", str(out), str(source)])
    (built,) = out.glob("fiftynet-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(target),
         str(wheel)])
    return target


def test_the_wheel_takes_only_specific_top_level_names(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert top_level - dist_info == {"fiftynet", "modeling_fiftynet"}
    assert {"fiftynet/training/cli.py", "fiftynet/conversion/convert.py", "fiftynet/hub_cards/push.py",
            "modeling_fiftynet/__init__.py", *CORPUS_FILES} <= set(names)
    # An implicit namespace package: a `fiftynet/__init__.py` would hide every other `fiftynet` folder on sys.path.
    assert "fiftynet/__init__.py" not in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert "fiftynet = fiftynet.training.cli:main" in entry_points


def in_user_project(installed: Path, project: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Runs python in `project`, with the installed wheel and the environment's dependencies on `sys.path` but
    neither the repository nor the development install (`-S`: no site-packages `.pth` files, so no editable finder)."""
    search_path = [str(installed), *dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(search_path), "HF_HUB_OFFLINE": "1"}
    return run([sys.executable, "-S", *arguments], cwd=project, env=env)


@pytest.fixture
def user_project(tmp_path) -> Path:
    """A user's project with packages of its own named `training`, `conversion` and `hub_cards`."""
    for name in ("training", "conversion", "hub_cards"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"MINE = {name!r}\n")
    return tmp_path


def test_the_installed_package_leaves_the_users_own_packages_alone(installed, user_project):
    code = textwrap.dedent(f"""
        import importlib.metadata, sys
        from pathlib import Path

        import conversion, hub_cards, training
        assert (training.MINE, conversion.MINE, hub_cards.MINE) == ("training", "conversion", "hub_cards")
        assert Path(training.__file__).parent == Path.cwd() / "training", training.__file__

        import fiftynet.conversion.convert, fiftynet.hub_cards.push, fiftynet.training.cli, modeling_fiftynet
        from fiftynet.training.corpus import corpus_files
        installed = Path({str(installed)!r})
        for module in (fiftynet.training.cli, fiftynet.conversion.convert, fiftynet.hub_cards.push, modeling_fiftynet):
            assert installed in Path(module.__file__).parents, module.__file__
        assert all(installed in Path(path).parents and Path(path).is_file() for path in corpus_files().values())
        assert {str(ROOT)!r} not in sys.path
        # The users' packages are still theirs after everything fiftynet imported.
        assert sys.modules["training"] is training and training.MINE == "training"

        (script,) = importlib.metadata.entry_points(group="console_scripts", name="fiftynet")
        assert script.value == "fiftynet.training.cli:main" and script.load() is fiftynet.training.cli.main
    """)
    in_user_project(installed, user_project, "-c", code)


@pytest.mark.parametrize("module", ["fiftynet.training.cli", "fiftynet.training.train"])
def test_documented_commands_run_from_anywhere(installed, user_project, module):
    result = in_user_project(installed, user_project, "-m", module, "--help")
    assert result.stdout.startswith("usage: fiftynet"), result.stdout


def test_hub_cards_imports_nothing_of_training(tmp_path):
    """`fiftynet.hub_cards` is the lower layer: `fiftynet.training` builds on it, never the reverse. It raises the
    same `UsageError` that `fiftynet` turns into exit code 2."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys

        import fiftynet.hub_cards

        modules = [module.name for module in pkgutil.iter_modules(fiftynet.hub_cards.__path__, "fiftynet.hub_cards.")]
        assert {"fiftynet.hub_cards.card", "fiftynet.hub_cards.errors", "fiftynet.hub_cards.push"} <= set(modules)
        for name in modules:
            importlib.import_module(name)
        assert fiftynet.hub_cards.CardRecord is fiftynet.hub_cards.card.CardRecord
        imported = sorted(name for name in sys.modules
                          if name.startswith(("fiftynet.training", "fiftynet.conversion"))
                          or name.partition(".")[0] in ("training", "conversion"))
        assert not imported, imported

        from fiftynet.training.errors import UsageError
        assert UsageError is fiftynet.hub_cards.errors.UsageError is fiftynet.hub_cards.push.UsageError
    """)
    run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})

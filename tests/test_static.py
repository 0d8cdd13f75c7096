"""Lint and strict typing are part of the suite, so that CI keeps them true."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[str, Path]:
    """The import package's subpackages and the repository folders pyproject maps them to."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


FOLDERS = sorted({path.name for path in package_dirs().values()})


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return path


def test_ruff() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "--output-format", "concise", *FOLDERS, "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = subprocess.run(
        [_tool("ruff"), "format", "--check", *FOLDERS, "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_packages(tmp_path: Path) -> None:
    # mypy cannot follow setuptools' editable-install finder, which maps the repository's
    # folders onto okr_pipeline's subpackages; a tree of links lays them out as installed.
    tree = tmp_path / "okr_pipeline"
    tree.mkdir()
    for name, folder in package_dirs().items():
        if name == "okr_pipeline":
            for item in folder.iterdir():
                (tree / item.name).symlink_to(item)
        else:
            (tree / name.removeprefix("okr_pipeline.")).symlink_to(folder, target_is_directory=True)
    result = subprocess.run(
        [
            _tool("mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "-p",
            "okr_pipeline",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Would pass on an empty tree: make sure every module was checked. mypy counts each
    # folder without an __init__.py (the migrations, web's templates and static files) as
    # one more source: a namespace package.
    files = {path for folder in package_dirs().values() for path in folder.rglob("*.py")}
    bare = {
        path
        for folder in package_dirs().values()
        for path in folder.rglob("*")
        if path.is_dir() and path.name != "__pycache__" and not (path / "__init__.py").exists()
    }
    expected = len(files) + len(bare)
    assert f"no issues found in {expected} source files" in result.stdout, result.stdout

"""``okr connector new``: the package it writes installs, and its own tests pass as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from okr_pipeline.cli.scaffold import check_name, write_connector_package
from okr_pipeline.okr_core.errors import ConfigError
from tests.cli.test_cli import assert_no_traceback, cli_env, okr

__all__ = ["cli_env"]  # the module fixture, imported to be used here

NAME = "acme_crm"
PYTEST = [sys.executable, "-m", "pytest"]


def _pytest(package: Path, site: Path, record_mode: str | None) -> subprocess.CompletedProcess[str]:
    """Run the generated package's tests in a process of their own, as its author would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    if record_mode is not None:
        env["OKR_VCR_RECORD_MODE"] = record_mode
    return subprocess.run(
        # --assert=plain: no assertion rewriting, whose ast.parse failed here once at random
        # ("SystemError: AST constructor recursion depth mismatch", a CPython 3.11 bug).
        [*PYTEST, "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist", "--assert=plain"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated package, installed (no network, no dependencies) into a folder of its own."""
    root = tmp_path_factory.mktemp("scaffold")
    package = root / "okr-acme-crm"
    write_connector_package(NAME, package)
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return package, site


def test_generated_tests_pass_then_record_and_replay_a_cassette(
    installed: tuple[Path, Path],
) -> None:
    package, site = installed
    cassette = package / "tests" / "cassettes" / "signups.yaml"

    first = _pytest(package, site, None)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "passed" in first.stdout and "failed" not in first.stdout
    # As generated, there is no cassette: replay mode says how to record it.
    assert "1 skipped" in first.stdout and "OKR_VCR_RECORD_MODE=once" in first.stdout
    assert not cassette.exists()

    recorded = _pytest(package, site, "once")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "skipped" not in recorded.stdout
    text = cassette.read_text()
    assert "acme_crm-key-5c1e9a77d3-SECRET" not in text and "127.0.0.1" not in text
    assert "uri: http://test-api.invalid/v1/metrics/signups?from=" in text

    replayed = _pytest(package, site, None)  # record mode none: the cassette answers
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "skipped" not in replayed.stdout and "failed" not in replayed.stdout
    assert cassette.read_text() == text


def test_the_entry_point_registers_the_type(installed: tuple[Path, Path]) -> None:
    _, site = installed
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from okr_pipeline.connectors.registry import get_source_class;"
            f"print(get_source_class('{NAME}').__name__)",
        ],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "AcmeCrmSource", result.stderr


def test_the_package_has_its_parts(tmp_path: Path) -> None:
    written = write_connector_package("shop", tmp_path / "pkg")
    names = sorted(str(p.relative_to(tmp_path / "pkg")) for p in written)
    assert names == [
        "README.md",
        "pyproject.toml",
        "src/okr_shop/__init__.py",
        "src/okr_shop/source.py",
        "tests/cassette.py",
        "tests/conftest.py",
        "tests/shop_server.py",
        "tests/test_shop.py",
    ]
    pyproject = (tmp_path / "pkg" / "pyproject.toml").read_text()
    assert 'name = "okr-shop"' in pyproject and 'dependencies = ["okr-pipeline"]' in pyproject
    assert '[project.entry-points."okr.connectors"]\nshop = "okr_shop.source:ShopSource"' in (
        pyproject
    )
    cassette = (tmp_path / "pkg" / "tests" / "cassette.py").read_text()
    assert 'os.environ.get("OKR_VCR_RECORD_MODE", "none")' in cassette
    assert "OKR_SECRETS__SHOP_KEY" in (tmp_path / "pkg" / "README.md").read_text()
    assert "__" + "NAME" not in "".join(p.read_text() for p in written)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Acme", "is not valid: use lowercase letters"),
        ("9lives", "is not valid"),
        ("acme-crm", "is not valid"),
        ("acme__crm", "is not valid"),
        ("acme_", "is not valid"),
        ("", "is not valid"),
        ("class", "is a Python keyword"),
        ("sql", "already installed ('okr connectors' lists them)"),
    ],
)
def test_bad_names_are_refused_clearly(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_name(name, {"sql", "http"})


def test_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        write_connector_package("shop", tmp_path / "taken")


def test_the_command_writes_the_package(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = okr("connector", "new", "shop", "--dir", "out", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "for source type 'shop'" in result.stdout
    assert (tmp_path / "out" / "src" / "okr_shop" / "source.py").is_file()

    bad = okr("connector", "new", "Shop", cwd=tmp_path, env=cli_env)
    assert bad.returncode == 1
    assert_no_traceback(bad)
    assert "Error: connector name 'Shop' is not valid" in bad.stderr

"""The small things a person notices in a terminal.

``okr status | head -2`` ends quietly with exit code 0; ``--help`` shows no ``<bool>``
beside a flag; a mistyped KR gets "did you mean"; shell completion offers commands, option
values and the store's KRs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from okr_pipeline.cli.main import app
from okr_pipeline.cli.suggest import close_names, did_you_mean
from okr_pipeline.okr_store.records import StoredKeyResult
from tests.cli.listing_project import ListingProject, build


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListingProject]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield build(tmp_path_factory.mktemp("manners"), monkeypatch)


@pytest.mark.parametrize(
    "command",
    ["okr status | head -2", "okr history signups | head -1", "okr export | head -1"],
)
def test_a_reader_that_stops_early_is_no_error(listing: ListingProject, command: str) -> None:
    # pipefail: the pipeline's status is okr's own, not head's.
    script = "set -o pipefail; " + command.replace("okr", '"$PY" -m okr_pipeline', 1)
    import sys

    result = subprocess.run(
        ["bash", "-c", script],
        cwd=listing.project,
        env={**listing.env, "PY": sys.executable, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert 1 <= len(result.stdout.splitlines()) <= 2


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer's own click)
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))  # type: ignore[arg-type]


def test_every_command_is_checked() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"", "status", "history", "export", "alerts", "db upgrade", "source test"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "okr")
def test_help_shows_no_bool_placeholder(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("explain", "signup"),
        ("history", "signup"),
        ("alerts", "--kr", "signup"),
        ("silence", "signup", "--until", "3d", "--reason", "typo"),
        ("history", "growth/sign-ups"),
        ("run", "--kr", "signup"),
    ],
)
def test_a_mistyped_kr_gets_did_you_mean(listing: ListingProject, args: tuple[str, ...]) -> None:
    result = listing.okr(*args)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: No key result named '{args[1] if args[0] not in ('alerts', 'run') else args[2]}'. "
        "Did you mean 'growth/signups'? 'okr status' lists them."
    )
    assert "Traceback" not in result.stderr


def test_a_mistyped_checkin_gets_the_same_hint(listing: ListingProject) -> None:
    result = listing.okr("checkin", "signup", "3")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: no KR named 'signup'. Did you mean 'growth/signups'?"


def test_a_name_like_nothing_gets_no_guess(listing: ListingProject) -> None:
    result = listing.okr("history", "zzz")
    assert result.returncode == 1
    assert "Did you mean" not in result.stderr and "No key result named 'zzz'" in result.stderr


def _kr(objective: str, key: str) -> StoredKeyResult:
    when = datetime(2026, 10, 1, tzinfo=UTC)
    return StoredKeyResult(
        kr_id=1, ref=f"{objective}/{key}", cycle="2026-Q4", objective_key=objective,
        kr_key=key, title=key, unit="", owner="o", objective_type="aspirational",
        success_level=0.7, cycle_start=when, cycle_end=when, kind="increase",
        baseline=Decimal(0), baseline_auto=False, target="1", target_value=Decimal(1),
        floor=None, weight=Decimal(1), schedule="0 * * * *", source={}, source_type="sql",
        last_as_of=None, last_good_as_of=None,
    )  # fmt: skip


def test_did_you_mean_offers_each_close_ref_once() -> None:
    krs = [_kr("growth", "signups"), _kr("retention", "signups"), _kr("growth", "revenue")]
    assert did_you_mean("signup", krs) == (" Did you mean 'growth/signups' or 'retention/signups'?")
    assert did_you_mean("growth/revenu", krs) == " Did you mean 'growth/revenue'?"
    # Nothing close: the few known names are listed; with many, nothing is guessed.
    assert did_you_mean("zzz", krs) == (
        " Known: 'growth/revenue', 'growth/signups', 'retention/signups'."
    )
    many = [_kr("growth", f"kr{number}") for number in range(9)]
    assert did_you_mean("zzz", many) == ""
    assert close_names("listners", ["listeners", "signups"]) == ["listeners"]


def test_completion_offers_commands_values_and_krs(listing: ListingProject) -> None:
    import sys
    from pathlib import Path

    okr = str(Path(sys.executable).with_name("okr"))

    def complete(words: str) -> list[str]:
        env = {
            **listing.env,
            "_OKR_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        result = subprocess.run(
            [okr],  # the console script: completion is keyed to the program's name
            cwd=listing.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert "status" in complete("okr sta")
    assert complete("okr export --format ") == ["csv", "json"]
    assert complete("okr history meet") == ["meetups"]
    assert complete("okr explain growth/") == [
        "growth/paying-listeners-from-the-spring-campaign",
        "growth/signups",
    ]
    script = subprocess.run(
        [okr, "--show-completion", "bash"],
        env={**listing.env, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert "_OKR_COMPLETE=complete_bash" in script.stdout


def test_silence_help_does_not_confuse_silenced_with_recorded() -> None:
    # 'recorded' is the delivery of alerts no channel could take; silenced ones are 'silenced'.
    result = CliRunner().invoke(app, ["silence", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "recorded" not in text
    assert "No channel gets them meanwhile; 'okr alerts' lists them with delivery 'silenced'." in (
        text.replace("│", " ").replace("  ", " ")
    )

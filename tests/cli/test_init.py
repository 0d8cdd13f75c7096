"""``okr init``: a project that validates and runs at once, and never overwrites a file."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from okr_pipeline.cli.init_commands import write_project
from okr_pipeline.cli.init_files import REPOSITORY_FOLDER, prefect_yaml, project_files, quarter_of
from okr_pipeline.okr_core.alerting.routing import load_routing
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import load_settings
from tests.cli.test_cli import assert_no_traceback, cli_env, okr

__all__ = ["cli_env"]  # the module fixture, imported to be used here

TODAY = date(2026, 11, 26)
REPOSITORY = Path(__file__).resolve().parents[2]
FILES = ["okrs/okrs.yaml", "okr.toml", ".env.example", "alerts.yaml", "prefect.yaml", ".gitignore"]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31))),
        (date(2026, 5, 31), ("2026-Q2", date(2026, 4, 1), date(2026, 6, 30))),
        (date(2026, 9, 30), ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))),
        (date(2026, 12, 31), ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))),
    ],
)
def test_quarter_of(day: date, expected: tuple[str, date, date]) -> None:
    assert quarter_of(day) == expected


def test_writes_every_file_with_this_quarters_cycle(tmp_path: Path) -> None:
    written = write_project(tmp_path / "new", TODAY)
    assert [path.relative_to(tmp_path / "new").as_posix() for path in written] == FILES
    okrs = (tmp_path / "new" / "okrs" / "okrs.yaml").read_text()
    assert "name: 2026-Q4\n  start: 2026-10-01\n  end: 2026-12-31" in okrs
    assert ".okr/" in (tmp_path / "new" / ".gitignore").read_text().splitlines()
    assert ".env" in (tmp_path / "new" / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("existing", [*FILES, "okrs/mine.yaml"])
def test_never_overwrites(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_text("mine\n")
    with pytest.raises(ConfigError, match="nothing written") as raised:
        write_project(tmp_path, TODAY)
    assert (existing if existing != "okrs/mine.yaml" else "okrs/") in str(raised.value)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == sorted(
        {existing, *([existing.split("/")[0]] if "/" in existing else [])}
    )
    assert (tmp_path / existing).read_text() == "mine\n"


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        write_project(tmp_path / "file", TODAY)


def test_the_repositorys_prefect_yaml_is_the_template() -> None:
    assert (REPOSITORY / "prefect.yaml").read_text() == prefect_yaml(REPOSITORY_FOLDER)


def test_prefect_yaml_names_the_project_folder(tmp_path: Path) -> None:
    import yaml

    folder = tmp_path / 'a "quoted" folder'
    write_project(folder, TODAY)
    loaded = yaml.safe_load((folder / "prefect.yaml").read_text())
    [pull] = loaded["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == str(folder)
    deployment, shard = loaded["deployments"]
    assert deployment["name"] == "okr-update" and deployment["work_pool"]["name"] == "okr-pool"
    assert deployment["entrypoint"] == "okr_pipeline.flows.update:update_key_results"
    # The shards of a split run: another flow, another name, no schedule, heartbeats on.
    assert shard["name"] == "okr-shard" and shard["work_pool"]["name"] == "okr-pool"
    assert shard["entrypoint"] == "okr_pipeline.flows.shards:measure_shard"
    assert "schedules" not in shard
    env = shard["work_pool"]["job_variables"]["env"]
    assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) >= 30


def _uncommented(text: str, start: str) -> str:
    """``text`` with the commented block from the line starting with ``start`` uncommented."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.lstrip().startswith(start))
    indent = len(lines[first]) - len(lines[first].lstrip())
    for index in range(first, len(lines)):
        line = lines[index]
        if not line.lstrip().startswith("#"):
            break
        lines[index] = line[:indent] + re.sub(r"^# ?", "", line[indent:])
    return "\n".join(lines) + "\n"


def test_the_commented_examples_are_valid_once_uncommented(tmp_path: Path) -> None:
    files = project_files(TODAY, tmp_path)
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(_uncommented(files["alerts.yaml"], "# routes:"))
    routing = load_routing(alerts)
    assert [route.name for route in routing.routes] == ["team"]
    toml = files["okr.toml"]
    for key in ("# store_url", "# [connections.warehouse]", "# [ui]", "# [shards]"):
        toml = _uncommented(toml, key)
    (tmp_path / "okr.toml").write_text(toml)
    settings = load_settings(tmp_path)
    assert settings.max_concurrency == 16 and "warehouse" in settings.connections
    assert settings.ui.port == 8400
    assert settings.shards.count == 4 and settings.shards.work_pool == "okr-pool"


def test_init_then_validate_and_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """The project runs at once, and the commented sql KR validates once uncommented."""
    created = okr("init", "proj", cwd=tmp_path, env=cli_env, timeout=60)
    assert created.returncode == 0, created.stderr
    assert "okr validate" in created.stdout and "okr run --all" in created.stdout
    project = tmp_path / "proj"
    for command in (["validate"], ["run", "--all"]):
        result = okr(*command, cwd=project, env=cli_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert_no_traceback(result)
        assert "warning" not in result.stdout.lower()
    assert "2 no_data" in result.stdout

    okrs = project / "okrs" / "okrs.yaml"
    okrs.write_text(_uncommented(okrs.read_text(), "# - id: weekly-signups"))
    env = {**cli_env, "OKR_CONNECTIONS__WAREHOUSE__URL": "sqlite:///warehouse.db"}
    result = okr("validate", cwd=project, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 key results" in result.stdout

    again = okr("init", "proj", cwd=tmp_path, env=cli_env, timeout=60)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "nothing written" in again.stderr
    assert_no_traceback(again)

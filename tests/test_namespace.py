"""One installed import name, and a user's own ``flows/`` and ``connectors/`` left alone.

A Prefect project usually has a ``flows/`` folder of its own, and the folder a command runs
in comes first on ``sys.path``: if the distribution installed ``flows`` or ``connectors`` as
top-level names, the user's folders would shadow ours (or ours theirs). Everything lives
under ``okr_pipeline``; these tests build the wheel, run the command and load the
deployment's entrypoint from such a folder, and check that reading commands leave Prefect
unimported.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_static import ROOT, package_dirs

ENTRYPOINT = "okr_pipeline.flows.update:update_key_results"

# The project's one KR lives in a fixed past quarter and is measured at a fixed as-of, so
# nothing here depends on today's date.
AS_OF = "2025-02-03T09:00:00+00:00"
KR = "grow-signups/weekly-signups"
OKRS = """\
cycle:
  name: 2025-Q1
  start: 2025-01-01
  end: 2025-03-31
objectives:
  - id: grow-signups
    title: Grow sign-ups
    owner: data-team
    key_results:
      - id: weekly-signups
        title: Sign-ups from 10 to 20
        baseline: 10
        target: 20
        schedule: "0 9 * * *"
        source:
          type: sql
          connection: warehouse
          query: SELECT count(*) FROM signups
"""

# The user's own folders: each module leaves a mark when imported; update.py then fails.
MARK = "imported-user-modules.txt"
USER_MODULES = {
    "flows/__init__.py": "",
    "flows/update.py": "raise RuntimeError('the user flows/update.py was imported')\n",
    "connectors/__init__.py": "",
    "connectors/sql.py": "raise RuntimeError('the user connectors/sql.py was imported')\n",
}


def clean_env(prefect_home: Path) -> dict[str, str]:
    """This environment without OKR_/PREFECT_ settings: the project's .env decides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_HOME"] = str(prefect_home)
    env["COLUMNS"] = "120"
    return env


def make_project(folder: Path) -> Path:
    """A user's project: okrs/, a SQLite warehouse, .env, and their own flows/, connectors/."""
    (folder / "okrs").mkdir(parents=True)
    (folder / "okrs" / "growth.yaml").write_text(OKRS, encoding="utf-8")
    with sqlite3.connect(folder / "warehouse.db") as conn:
        conn.execute("CREATE TABLE signups (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO signups (id) VALUES (?)", [(i,) for i in range(14)])
    conn.close()
    (folder / ".env").write_text(
        f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{folder / 'warehouse.db'}\n",
        encoding="utf-8",
    )
    for name, body in USER_MODULES.items():
        path = folder / name
        path.parent.mkdir(exist_ok=True)
        mark = f"open({str(folder / MARK)!r}, 'a').write({name!r} + '\\n')\n"
        path.write_text(mark + body, encoding="utf-8")
    return folder


def python(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` (this interpreter) run in ``cwd``, its output captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def okr(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m okr_pipeline ARGS`` run from inside the project folder."""
    return python(["-m", "okr_pipeline", *args], project, env, timeout=600)


def assert_user_modules_untouched(project: Path) -> None:
    mark = project / MARK
    assert not mark.exists(), f"imported: {mark.read_text()}"


@dataclass(frozen=True)
class MeasuredProject:
    """The user's project after one ``okr run`` from inside it (so it has a store)."""

    folder: Path
    env: dict[str, str]
    first_run: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def measured_project(tmp_path_factory: pytest.TempPathFactory) -> MeasuredProject:
    # One run serves every test here: starting Prefect's temporary API is the slow part.
    base = tmp_path_factory.mktemp("namespace")
    project = make_project(base / "project")
    env = clean_env(base / "prefect-home")
    return MeasuredProject(project, env, okr(project, env, "run", "--as-of", AS_OF))


def test_the_wheel_installs_one_import_name(tmp_path: Path) -> None:
    # Built from a copy of what the wheel is made of: an in-tree build leaves build/lib
    # behind, whose stale modules would end up in the next wheel, and two test processes
    # would share it.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    folders = {folder.name for folder in package_dirs().values()}
    for folder in folders:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    build = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    result = python([*build, "-w", str(tmp_path / "dist"), str(source)], tmp_path, dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("okr_pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"okr_pipeline"}
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["okr_pipeline"]

    assert "okr_pipeline/py.typed" in names
    assert "okr_pipeline/okr_store/migrations/script.py.mako" in names
    versions = sorted((ROOT / "okr_store" / "migrations" / "versions").glob("*.py"))
    assert versions
    for version in versions:
        assert f"okr_pipeline/okr_store/migrations/versions/{version.name}" in names

    # Every module of every package folder, where the package-dir mapping puts it.
    expected = set()
    for package, folder in package_dirs().items():
        target = package.replace(".", "/")
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder)
            if package == "okr_pipeline" and relative.parts[0] in folders:
                continue
            expected.add(f"{target}/{relative.as_posix()}")
    assert len(expected) > 50
    assert expected <= names, sorted(expected - names)
    modules = {name for name in names if name.endswith(".py")}
    assert modules == expected, sorted(modules - expected)


def test_a_users_flows_and_connectors_folders_are_harmless(
    measured_project: MeasuredProject,
) -> None:
    project, env, run = measured_project.folder, measured_project.env, measured_project.first_run
    assert run.returncode == 0, run.stdout + run.stderr
    assert "measured 1 of 1 KRs" in run.stdout, run.stdout
    result = okr(project, env, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_user_modules_untouched(project)


def test_the_probe_sees_an_import_of_the_users_folders(tmp_path: Path) -> None:
    # Without this, "never imported" could pass on marks that are never written.
    project = make_project(tmp_path / "project")
    env = clean_env(tmp_path / "prefect-home")
    result = python(["-c", "import connectors, flows.update"], project, env)
    assert "the user flows/update.py was imported" in result.stderr
    assert (project / MARK).read_text().split() == [
        "connectors/__init__.py",
        "flows/__init__.py",
        "flows/update.py",
    ]


def test_the_deployment_entrypoint_loads_our_flow(
    measured_project: MeasuredProject,
) -> None:
    # As a worker does with prefect.yaml's entrypoint: the project folder first on sys.path
    # (``python -c`` puts the working directory there).
    project, env = measured_project.folder, measured_project.env
    script = (
        "import sys\n"
        "from prefect import Flow\n"
        "from prefect.utilities.importtools import import_object\n"
        f"flow = import_object({ENTRYPOINT!r})\n"
        "module = sys.modules[flow.fn.__module__]\n"
        "print(sys.path[0] == '', isinstance(flow, Flow), flow.name, module.__name__)\n"
        "print(module.__file__)\n"
    )
    result = python(["-c", script], project, env)
    assert result.returncode == 0, result.stdout + result.stderr
    first, path = result.stdout.strip().splitlines()[-2:]
    assert first == "True True update-key-results okr_pipeline.flows.update"
    assert Path(path).resolve() == (ROOT / "flows" / "update.py").resolve()
    assert_user_modules_untouched(project)


READING_COMMANDS = [
    pytest.param(["status"], id="status"),
    pytest.param(["alerts"], id="alerts"),
    pytest.param(["silences"], id="silences"),
    pytest.param(["explain", KR], id="explain"),
    pytest.param(["runs"], id="runs"),
]


def imported_modules(importtime: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    pattern = re.compile(r"^import time:\s+\d+\s+\|\s+\d+\s+\|\s*(\S+)\s*$", re.MULTILINE)
    return set(pattern.findall(importtime))


@pytest.mark.parametrize("args", READING_COMMANDS)
def test_reading_commands_do_not_import_prefect(
    measured_project: MeasuredProject, args: list[str]
) -> None:
    project, env = measured_project.folder, measured_project.env
    assert measured_project.first_run.returncode == 0, measured_project.first_run.stderr
    result = python(["-X", "importtime", "-m", "okr_pipeline", *args], project, env)
    assert result.returncode == 0, result.stdout + result.stderr
    modules = imported_modules(result.stderr)
    assert "okr_pipeline.cli" in modules  # the output was read at all
    prefect = sorted(m for m in modules if m == "prefect" or m.startswith("prefect."))
    assert not prefect, prefect[:10]
    assert_user_modules_untouched(project)


def test_imported_modules_reads_importtime_output() -> None:
    sample = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   _io\n"
        "import time:      3001 |      90210 | prefect\n"
        "import time:        17 |         17 |     prefect.utilities\n"
    )
    assert imported_modules(sample) == {"_io", "prefect", "prefect.utilities"}

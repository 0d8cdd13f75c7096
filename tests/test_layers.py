"""The import rules of docs/architecture.md, checked over the source text of every module.

One direction of dependency, and Prefect kept to the layer that talks to it::

    cli ──────────────► everything
    demo ─────────────► everything but cli
    flows ────────────► web and run and below (the only module-level ``import prefect``)
    web ──────────────► run and below (the dashboard and the report; no Prefect)
    run ──────────────► notify, okr_store, connectors, okr_core
    notify ───────────► connectors, okr_core (Prefect only lazily, inside functions)
    connectors ───────► okr_core
    okr_store ────────► okr_core
    okr_core ─────────► nothing of ours, no database library
    okr_pipeline/__init__ ► nothing of ours (__main__ counts as cli)

Every import of our code names the namespace (``okr_pipeline.run...``), in the package
folders, tests and bench alike: never a bare ``run`` or ``flows``, nor a relative import.

A small AST walk rather than import-linter: no new dependency, and it sees imports inside
function bodies and ``if TYPE_CHECKING:`` blocks, which count for the layers like any other.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_static import ROOT, package_dirs

ROOT_PACKAGE = "okr_pipeline"

# What each layer may import of ours besides itself. The root package's ``__init__`` imports
# nothing, so every layer may import it (``okr_pipeline.__version__``); ``__main__`` is the
# command's entry point and is checked as part of cli.
LOWER = {"okr_core", "connectors", "okr_store", "notify", "run"}
ALLOWED: dict[str, frozenset[str]] = {
    "okr_core": frozenset(),
    "connectors": frozenset({"okr_core"}),
    "okr_store": frozenset({"okr_core"}),
    "notify": frozenset({"okr_core", "connectors"}),
    "run": frozenset({"okr_core", "connectors", "okr_store", "notify"}),
    "web": frozenset(LOWER),
    "flows": frozenset(LOWER | {"web"}),
    "cli": frozenset(LOWER | {"flows", "demo", "web"}),
    "demo": frozenset(LOWER | {"flows"}),
    ROOT_PACKAGE: frozenset(),
}

# Where ``prefect`` may be imported. flows/ is the Prefect layer: anywhere. notify/ sends
# through Prefect blocks and emits Prefect events, so it imports Prefect inside the functions
# that do it (never at module level, so reading commands that touch notify start fast).
# Imports under ``if TYPE_CHECKING:`` are exempt in notify/ only: they never run, and
# annotating those lazily imported objects is what they are for. Everywhere else a
# TYPE_CHECKING import counts like any other: run/ must be drivable and type-checkable
# without Prefect, and cli/ reaches Prefect only through flows/.
PREFECT_ANYWHERE = frozenset({"flows"})
PREFECT_IN_FUNCTIONS = frozenset({"notify"})

# The pure core touches no database either: its math is tested without one.
NO_DATABASE = frozenset({"okr_core"})
DATABASE_LIBRARIES = frozenset({"sqlalchemy", "alembic"})

# Known violations, waived one by one until the module is fixed: (file, imported module) ->
# why. Keyed by module rather than line so that edits above it keep the waiver; each entry
# must still occur (test_waived_violations_still_exist), so a fixed one has to be removed.
ALLOWED_VIOLATIONS: dict[tuple[str, str], str] = {
    # None left. ("flows/runner.py", "okr_pipeline.cli.render") was one: flows printing the
    # status table with cli's rendering; it went when the printing moved to cli/.
}


# Each layer (the subpackage's last name) and the repository folder pyproject maps it onto.
LAYERS = {name.rpartition(".")[2]: folder for name, folder in package_dirs().items()}
# The names our folders would be imported as if someone forgot the namespace.
BARE_NAMES = frozenset(LAYERS) - {ROOT_PACKAGE}


@dataclass(frozen=True)
class Import:
    """One imported module name, where it was imported and in which context."""

    name: str  # absolute dotted name; ``from a import b`` yields ``a.b``
    line: int
    in_function: bool
    type_checking: bool
    relative: bool


@dataclass(frozen=True)
class Problem:
    """One broken rule: where, which import, and what is wrong."""

    path: str
    line: int
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    def waived(self) -> bool:
        return any(
            self.path == path and (self.name == module or self.name.startswith(module + "."))
            for path, module in ALLOWED_VIOLATIONS
        )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str) -> list[Import]:
    """Every import statement of ``source``, the module it belongs to being ``module``.

    Relative imports are resolved against ``module`` (a package's ``__init__`` is named
    after the package) and marked, so that the layer rules see where they point.
    """
    tree = ast.parse(source)
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name, node.lineno, in_function, type_checking, False))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                anchor = parts[: len(parts) - node.level]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                name = base if alias.name == "*" else f"{base}.{alias.name}"
                found.append(Import(name, node.lineno, in_function, type_checking, node.level > 0))
        for child in ast.iter_child_nodes(node):
            guarded = isinstance(node, ast.If) and _is_type_checking(node.test)
            if guarded and any(child is stmt for stmt in node.body):
                visit(child, in_function, True)
            else:
                visit(
                    child,
                    in_function
                    or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda),
                    type_checking,
                )

    visit(tree, False, False)
    return found


def layer_of_import(name: str) -> str | None:
    """The layer an absolute module name belongs to, or None when it is not ours."""
    parts = name.split(".")
    if parts[0] != ROOT_PACKAGE:
        return None
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return ROOT_PACKAGE


def check_source(source: str, path: str, layer: str | None, module: str = "") -> list[Problem]:
    """The import rules ``source`` breaks, one problem per imported name.

    Args:
        source: The module's text.
        path: How to name it in messages.
        layer: Its layer (``"run"``, ``"okr_pipeline"`` for the root ``__init__``), or None
            for tests and benchmarks, which only have to use the namespace.
        module: Its dotted module name, to resolve relative imports.
    """
    problems: list[Problem] = []
    for imp in imports_of(source, module):

        def report(message: str, imp: Import = imp) -> None:
            problems.append(Problem(path, imp.line, imp.name, message))

        top = imp.name.split(".")[0]
        if imp.relative and layer is not None:
            report(f"relative import of {imp.name}; import it by its absolute name")
        elif top in BARE_NAMES:
            report(f"bare import of {imp.name}; import it as {ROOT_PACKAGE}.{imp.name}")
        if top == "prefect" and layer is not None and layer not in PREFECT_ANYWHERE:
            lazy_ok = layer in PREFECT_IN_FUNCTIONS and (imp.in_function or imp.type_checking)
            if not lazy_ok:
                rule = (
                    "only inside a function body"
                    if layer in PREFECT_IN_FUNCTIONS
                    else "not at all (only flows/ and, lazily, notify/ do)"
                )
                report(f"{layer} imports {imp.name}; it may import prefect {rule}")
        if top in DATABASE_LIBRARIES and layer in NO_DATABASE:
            report(f"{layer} imports {imp.name}; {layer} is pure and imports no database library")
        if layer is None:
            continue
        target = layer_of_import(imp.name)
        if target is None and top in BARE_NAMES:
            target = top
        if target is None or target == layer:
            continue
        if target == ROOT_PACKAGE and layer != ROOT_PACKAGE:
            continue
        if target not in ALLOWED[layer]:
            allowed = ", ".join(sorted(ALLOWED[layer])) or "nothing of ours"
            report(f"{layer} imports {imp.name} ({target}); {layer} may import {allowed}")
    return problems


def module_name(layer: str, folder: Path, path: Path) -> str:
    """The dotted name ``path`` is installed as."""
    parts = list(path.relative_to(folder).with_suffix("").parts)
    # A package's __init__ keeps its last part: relative imports resolve from the package.
    prefix = [ROOT_PACKAGE] if layer == ROOT_PACKAGE else [ROOT_PACKAGE, layer]
    return ".".join(prefix + parts)


def package_files() -> list[tuple[str, Path, str]]:
    """(layer, file, module name) for every module the package installs."""
    files = []
    for layer, folder in LAYERS.items():
        for path in sorted(folder.rglob("*.py")):
            if layer == ROOT_PACKAGE and path.relative_to(folder).parts[0] in LAYERS:
                continue  # a subpackage folder inside okr_pipeline/ would be its own layer
            files.append((layer, path, module_name(layer, folder, path)))
    return files


def all_problems() -> list[Problem]:
    problems: list[Problem] = []
    for layer, path, module in package_files():
        # __main__ is ``python -m okr_pipeline``: it runs the command, so it sits with cli.
        effective = "cli" if path == LAYERS[ROOT_PACKAGE] / "__main__.py" else layer
        rel = path.relative_to(ROOT).as_posix()
        problems += check_source(path.read_text(), rel, effective, module)
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            problems += check_source(path.read_text(), rel, None, "")
    return problems


def test_every_module_keeps_the_import_rules() -> None:
    problems = [str(p) for p in all_problems() if not p.waived()]
    assert not problems, "\n".join(problems)


def test_waived_violations_still_exist() -> None:
    # A waiver whose violation was fixed must go, or it would hide the next one there.
    problems = all_problems()
    for path, module in ALLOWED_VIOLATIONS:
        assert any(p.path == path and p.name.startswith(module) for p in problems), (path, module)


def test_the_check_sees_every_package_folder() -> None:
    # Would pass on an empty walk: every layer of the rules has modules, and vice versa.
    seen = {layer for layer, _, _ in package_files()}
    assert seen == set(ALLOWED)
    assert len(package_files()) > 50


def test_entry_points_name_the_namespace() -> None:
    # Entry points and the deployment import by string, out of the AST's sight.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = list(config["scripts"].values())
    for group in config["entry-points"].values():
        targets += group.values()
    entrypoints = re.findall(r"entrypoint:\s*(\S+)", (ROOT / "prefect.yaml").read_text())
    assert entrypoints
    for target in targets + entrypoints:
        assert target.startswith(ROOT_PACKAGE + "."), target


# The checker itself, on small sources it must reject (and some it must accept).
CASES = [
    # (layer, source, expected fragment of the one problem, or None for no problem)
    ("run", "import flows.update\n", "bare import of flows.update"),
    ("run", "from connectors.sql import SqlSource\n", "bare import of connectors.sql"),
    (None, "from okr_store.store import Store\n", "bare import of okr_store.store"),
    (None, "from okr_pipeline.flows.update import update_key_results\n", None),
    ("okr_core", "from okr_pipeline.connectors.base import BaseSource\n", "okr_core imports"),
    ("connectors", "from okr_pipeline.okr_store.store import Store\n", "connectors imports"),
    ("okr_store", "import okr_pipeline.connectors.sql\n", "okr_store imports"),
    ("connectors", "from okr_pipeline.okr_core.errors import OkrError\n", None),
    ("notify", "from okr_pipeline.okr_store.store import Store\n", "notify imports"),
    ("run", "from okr_pipeline.flows.update import update_key_results\n", "run imports"),
    ("run", "from okr_pipeline.notify.send import send_alerts\n", None),
    ("flows", "from okr_pipeline.cli.main import app\n", "flows imports"),
    ("flows", "from okr_pipeline.demo import project\n", "flows imports"),
    ("flows", "from okr_pipeline import cli\n", "flows imports"),
    ("flows", "from okr_pipeline.run.recorder import store_results\n", None),
    ("demo", "from okr_pipeline.cli.main import app\n", "demo imports"),
    ("cli", "from okr_pipeline.demo.project import create_demo_project\n", None),
    ("okr_pipeline", "from okr_pipeline.cli.main import main\n", "okr_pipeline imports"),
    ("okr_core", "from okr_pipeline import __version__\n", None),
    ("okr_core", "from . import errors\n", "relative import of okr_pipeline.okr_core.errors"),
    # Imports inside functions and TYPE_CHECKING blocks count for the layers.
    ("okr_store", "def f():\n    from okr_pipeline.run import fetch\n", "okr_store imports"),
    (
        "connectors",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from okr_pipeline.okr_store.store import Store\n",
        "connectors imports",
    ),
    ("okr_core", "def f():\n    import sqlalchemy as sa\n", "imports no database library"),
    ("okr_store", "import sqlalchemy as sa\n", None),
    # Prefect: flows anywhere; notify only lazily; nobody else.
    ("flows", "from prefect import flow\n", None),
    ("notify", "def send():\n    from prefect.events import emit_event\n", None),
    ("notify", "import prefect\n", "only inside a function body"),
    ("notify", "class C:\n    from prefect.blocks.core import Block\n", "only inside a function"),
    ("notify", "import typing\nif typing.TYPE_CHECKING:\n    from prefect import Flow\n", None),
    ("run", "def go():\n    import prefect\n", "not at all"),
    ("cli", "from prefect.client.orchestration import get_client\n", "not at all"),
    ("okr_core", "try:\n    import prefect\nexcept ImportError:\n    pass\n", "not at all"),
    ("run", "if TYPE_CHECKING:\n    from prefect import Flow\n", "not at all"),
    ("demo", "async def f():\n    from prefect import flow\n", "not at all"),
]


@pytest.mark.parametrize(("layer", "source", "expected"), CASES)
def test_the_checker_reports_what_it_must(
    layer: str | None, source: str, expected: str | None
) -> None:
    module = f"{ROOT_PACKAGE}.{layer}.mod" if layer and layer != ROOT_PACKAGE else ""
    problems = check_source(source, "x.py", layer, module)
    if expected is None:
        assert problems == []
    else:
        assert problems, source
        assert any(expected in p.message for p in problems), problems
        assert all(str(p).startswith("x.py:") for p in problems)

"""``okr connector new``: scaffold an installable package for a new connector."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from okr_pipeline.cli.app import console

connector_app = typer.Typer(help="Write your own connectors.", no_args_is_help=True)


@connector_app.command("new")
def new(
    name: Annotated[
        str,
        typer.Argument(help="Source type of the connector (e.g. acme_crm).", show_default=False),
    ],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Folder to write the package to (default: okr-<name>)."),
    ] = None,
) -> None:
    """Scaffold an installable connector package: module, entry point, tests, README.

    The package's tests pass as generated: the contract suite against a local server,
    and a vcrpy cassette recorded from it once (OKR_VCR_RECORD_MODE=once) and replayed after.
    """
    from okr_pipeline.cli.scaffold import check_name, write_connector_package
    from okr_pipeline.connectors.registry import SOURCE_TYPES

    check_name(name, set(SOURCE_TYPES))
    target = directory or Path("okr-" + name.replace("_", "-"))
    written = write_connector_package(name, target)
    console.print(
        f"Created {escape(str(target))}/ ({len(written)} files) for source type "
        f"'{escape(name)}'. Next:",
        highlight=False,
    )
    for step in (
        f"cd {target}",
        "pip install -e '.[test]'",
        "pytest",
        "OKR_VCR_RECORD_MODE=once pytest   (records the cassette; commit tests/cassettes)",
        "adapt src/*/source.py and tests/*_server.py to the service's API documentation",
    ):
        console.print(f"  {escape(step)}", highlight=False, soft_wrap=True)

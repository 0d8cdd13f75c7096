"""``okr source test``: fetch KRs now and show the value, the time and what was sent.

The "check connection" of a data engineer writing a KR: the OKR files are read (not the
store, so it works before any run), each KR's source is fetched once, and nothing is stored.
Prefect is imported only when a KR's connection or secret lives in a Prefect block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from okr_pipeline.cli.app import (
    AsOfOpt,
    ExitCode,
    ProjectOpt,
    console,
    fail,
    parse_time,
    settings_of,
)
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import settings_in_blocks
from okr_pipeline.okr_core.words import plural, suggest

if TYPE_CHECKING:
    from okr_pipeline.connectors.base import SourceEnvironment
    from okr_pipeline.okr_core.settings import Settings
    from okr_pipeline.run.fetch import FetchResult, SourcePool

source_app = typer.Typer(help="Check KRs' sources: fetch now, store nothing.", no_args_is_help=True)


@dataclass(frozen=True)
class _Kr:
    ref: str
    kr_id: str
    source: dict[str, Any]
    cycle_start: datetime
    cycle_end: datetime


@source_app.command("test")
def test(
    kr: Annotated[
        list[str] | None,
        typer.Argument(help="KRs to fetch (objective/kr or a unique KR id).", show_default=False),
    ] = None,
    all_krs: Annotated[bool, typer.Option("--all", help="Fetch every KR.")] = False,
    as_of: AsOfOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Fetch KRs now: print each value, how long it took and what was sent; store nothing.

    Secrets are redacted. Exits 3 when a source failed.
    """
    from okr_pipeline.run.definitions import load_definitions

    names = list(dict.fromkeys(kr or ()))
    if not names and not all_krs:
        fail("name a KR (objective/kr or its id) or give --all", ExitCode.USAGE)
    if names and all_krs:
        fail("give KR names or --all, not both", ExitCode.USAGE)
    settings = settings_of(project)
    when = parse_time(as_of) or datetime.now(UTC)
    krs = [
        _Kr(
            f"{objective.id}/{key_result.id}",
            key_result.id,
            key_result.source,
            cycle.start_at(),
            cycle.end_at(),
        )
        for cycle, objective, key_result in load_definitions(settings).key_results()
    ]
    chosen = krs if all_krs else [_find(name, krs) for name in names]
    failed = 0
    with _sources(settings, chosen) as (env, pool):
        for index, item in enumerate(chosen):
            failed += not _check(index, item, when, env, pool)
    if failed:
        console.print(f"{failed} of {plural(len(chosen), 'source')} failed.", highlight=False)
        raise typer.Exit(ExitCode.SOURCES_FAILED)


def _find(name: str, krs: list[_Kr]) -> _Kr:
    exact = [k for k in krs if k.ref == name]
    by_id = [k for k in krs if k.kr_id == name]
    if exact or len(by_id) == 1:
        return (exact or by_id)[0]
    if by_id:
        options = ", ".join(sorted(k.ref for k in by_id))
        raise ConfigError(f"KR id '{name}' is in several objectives; name one of: {options}")
    hint = suggest(name, [k.ref for k in krs]) or " Use 'objective/kr' or a KR id."
    raise ConfigError(f"No key result named '{name}' in the OKR files.{hint}")


@contextlib.contextmanager
def _sources(
    settings: Settings, chosen: list[_Kr]
) -> Iterator[tuple[SourceEnvironment, SourcePool]]:
    """The sources' environment and pool; Prefect blocks read when the chosen KRs use one."""
    from okr_pipeline.connectors.registry import parse_source_config
    from okr_pipeline.run.definitions import source_environment
    from okr_pipeline.run.fetch import SourcePool

    connections: set[str] = set()
    secrets: set[str] = set()
    for item in chosen:
        config = parse_source_config(item.source)
        connections |= config.connection_names()
        secrets |= config.secret_names()
    # Only the blocks these KRs need are read, and Prefect is imported only then.
    used = settings.model_copy(
        update={
            "connections": {n: c for n, c in settings.connections.items() if n in connections},
            "secrets": {n: s for n, s in settings.secrets.items() if n in secrets},
        }
    )
    if settings_in_blocks(used):
        from okr_pipeline.flows.blocks import resolve_blocks

        used = resolve_blocks(used)
    env = source_environment(used)
    with SourcePool(env) as pool:
        yield env, pool


def _check(index: int, item: _Kr, when: datetime, env: SourceEnvironment, pool: SourcePool) -> bool:
    """Fetch one KR and print what happened; True when its source answered."""
    from okr_pipeline.connectors.base import SourceContext
    from okr_pipeline.connectors.registry import parse_source_config
    from okr_pipeline.run.fetch import FetchRequest, fetch_all

    config = parse_source_config(item.source)
    ctx = SourceContext(when, item.cycle_start, item.cycle_end, item.ref)
    try:
        sent = pool.get(config).describe(config, ctx)
    except Exception as exc:  # noqa: BLE001 - the fetch below reports the same problem
        sent = f"(cannot be shown: {type(exc).__name__})"
    request = FetchRequest(index, item.ref, item.source, when, item.cycle_start, item.cycle_end)
    started = time.perf_counter()
    (result,) = fetch_all([request], env, max_concurrency=1, clock=_now, pool=pool)
    took = time.perf_counter() - started
    console.print(_headline(item.ref, result, took), highlight=False, soft_wrap=True)
    for line in sent.splitlines():
        console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)
    return result.ok


def _headline(ref: str, result: FetchResult, took: float) -> str:
    seconds = f"{took:.3f} s"
    if not result.ok:
        return f"[red]✗[/red] {escape(ref)}: [red]{escape(result.error or '')}[/red] ({seconds})"
    if result.value is None:
        return f"[yellow]-[/yellow] {escape(ref)}: no data ({seconds})"
    return f"[green]✓[/green] {escape(ref)}: {result.value} ({seconds})"


def _now() -> datetime:
    return datetime.now(UTC)

"""Commands about alerts: silence, silences, unsilence and the record of alerts."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from okr_pipeline.cli.app import (
    ProjectOpt,
    console,
    fail,
    settings_of,
)
from okr_pipeline.cli.suggest import complete_kr
from okr_pipeline.cli.tables import Cell, Column, Step, print_listing

if TYPE_CHECKING:
    from okr_pipeline.okr_store.store import Store


def _parse_until(text: str) -> datetime:
    """An ISO date or time, or a duration from now such as 3d, 12h, 2w."""
    from okr_pipeline.okr_core.alerting.model import AlertPolicyOverride

    now = datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            delta = AlertPolicyOverride(repeat_interval=text).repeat_interval
        except ValueError:
            fail(f"--until '{text}' is neither a date (2026-12-01), a time nor a duration (3d)")
        assert delta is not None
        return now + delta
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= now:
        fail(f"--until {when.isoformat()} is in the past")
    return when


def silence(
    target: Annotated[
        str, typer.Argument(help="A KR (objective/kr, or a unique KR id) or an objective id.")
    ],
    until: Annotated[
        str, typer.Option("--until", help="Until when: a date, a time, or a duration (3d).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    project: ProjectOpt = Path("."),
) -> None:
    """Silence a KR's or an objective's alerts until the date.

    No channel gets them meanwhile; 'okr alerts' lists them with delivery 'silenced'.
    """
    from okr_pipeline.cli.suggest import resolve_kr
    from okr_pipeline.run.record import open_store

    store = open_store(settings_of(project))
    try:
        krs = store.active_key_results()
        objectives = {kr.objective_key for kr in krs}
        ref = target if target in objectives else resolve_kr(target, krs).ref
        if not reason.strip():
            fail("--reason must say why (it is kept with the silence)")
        added = store.add_silence(ref, _parse_until(until), reason, datetime.now(UTC))
    finally:
        store.close()
    console.print(
        f"Silenced {added.target} until {added.until.isoformat(timespec='minutes')} "
        f"(silence {added.id}): {added.reason}",
        highlight=False,
    )


#: ``okr silences``: what gives way, in order, when the table is too wide.
SILENCE_COLUMNS = (
    Column("id", justify="right"),
    Column("target"),
    Column("until (UTC)"),
    Column("reason", wrap=True),
    Column("created (UTC)"),
)
SILENCE_STEPS: tuple[Step, ...] = (("created (UTC)", "drop"),)


def silences(
    expired: Annotated[bool, typer.Option("--expired", help="Include expired ones.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a list of silences) instead of a table.")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """List the silences."""
    from okr_pipeline.cli.json_output import listing, silence_json
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.cli.render import clock

    store = open_store_to_read(settings_of(project))
    now = datetime.now(UTC)
    try:
        rows = store.silences(None if expired else now, include_expired=expired)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(listing(silence_json(row, now) for row in rows) + "\n")
        return
    if not rows:
        console.print("No silences.")
        return
    cells: list[list[Cell]] = [
        [str(row.id), row.target, clock(row.until), row.reason, clock(row.created_at)]
        for row in rows
    ]
    print_listing(console, SILENCE_COLUMNS, cells, steps=SILENCE_STEPS, title="Silences")


def unsilence(
    silence_id: Annotated[int, typer.Argument(help="The silence's id ('okr silences').")],
    project: ProjectOpt = Path("."),
) -> None:
    """Remove a silence."""
    from okr_pipeline.run.record import open_store

    store = open_store(settings_of(project))
    try:
        removed = store.remove_silence(silence_id, datetime.now(UTC))
    finally:
        store.close()
    if not removed:
        fail(f"no active silence {silence_id}; 'okr silences' lists them")
    console.print(f"Removed silence {silence_id}.")


#: ``okr alerts``: the channel goes first when the table is too wide, then the route; if
#: that is not enough (a long KR id at 80 columns), each alert folds under its KR. The
#: alert's kind and transition (``off_track firing``) are ids: never wrapped.
ALERT_COLUMNS = (
    Column("when (UTC)"),
    Column("KR"),
    Column("alert"),
    Column("route"),
    Column("channel"),
    Column("delivery", wrap=True, min_width=8),
)
ALERT_STEPS: tuple[Step, ...] = (("channel", "drop"), ("route", "drop"))


def alerts(
    kr: Annotated[
        str | None,
        typer.Option("--kr", help="Only this KR (objective/kr).", autocompletion=complete_kr),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a list of alerts) instead of a table.")
    ] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """List recent alerts: sent, silenced, held back, failed to send or only recorded."""
    from okr_pipeline.cli.json_output import alert_json, listing
    from okr_pipeline.cli.reading import open_store_to_read
    from okr_pipeline.cli.render import clock

    store = open_store_to_read(settings_of(project))
    try:
        ref = None if kr is None else _resolve_ref(store, kr)
        rows = store.recent_alerts(limit=limit, ref=ref)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(listing(alert_json(row) for row in rows) + "\n")
        return
    if not rows:
        console.print("No alerts yet.")
        return
    cells: list[list[Cell]] = [
        [
            clock(row.created_at),
            row.ref,
            f"{row.kind} {row.transition}",
            row.route,
            row.channel or "—",
            row.delivery if not row.error else f"{row.delivery}: {row.error}",
        ]
        for row in rows
    ]
    print_listing(console, ALERT_COLUMNS, cells, steps=ALERT_STEPS, title="Recent alerts", key=1)


def _resolve_ref(store: Store, name: str) -> str:
    from okr_pipeline.cli.suggest import resolve_kr

    return resolve_kr(name, store.active_key_results()).ref

"""Commands about alerts: silence, silences, unsilence and the record of alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from okr_pipeline.cli.app import (
    ProjectOpt,
    console,
    fail,
    settings_of,
)

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
    """Silence a KR's or an objective's alerts: recorded, not sent, until the date."""
    from okr_pipeline.run.record import open_store
    from okr_pipeline.run.select import resolve_name

    store = open_store(settings_of(project))
    try:
        krs = store.active_key_results()
        objectives = {kr.objective_key for kr in krs}
        ref = target if target in objectives else resolve_name(target, krs).ref
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


def silences(
    expired: Annotated[bool, typer.Option("--expired", help="Include expired ones.")] = False,
    project: ProjectOpt = Path("."),
) -> None:
    """List the silences."""
    from rich.table import Table

    from okr_pipeline.run.record import open_store

    store = open_store(settings_of(project))
    try:
        rows = store.silences(None if expired else datetime.now(UTC), include_expired=expired)
    finally:
        store.close()
    if not rows:
        console.print("No silences.")
        return
    table = Table(title="Silences", title_justify="left")
    for name in ("id", "target", "until", "reason", "created"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            str(row.id),
            row.target,
            row.until.isoformat(timespec="minutes"),
            row.reason,
            row.created_at.isoformat(timespec="minutes"),
        )
    console.print(table)


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


def alerts(
    kr: Annotated[str | None, typer.Option("--kr", help="Only this KR (objective/kr).")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1)] = 50,
    project: ProjectOpt = Path("."),
) -> None:
    """List recent alerts: sent, silenced, held back or failed to send."""
    from rich.table import Table

    from okr_pipeline.run.record import open_store

    store = open_store(settings_of(project))
    try:
        ref = None if kr is None else _resolve_ref(store, kr)
        rows = store.recent_alerts(limit=limit, ref=ref)
    finally:
        store.close()
    if not rows:
        console.print("No alerts yet.")
        return
    table = Table(title="Recent alerts", title_justify="left")
    for name in ("when", "KR", "alert", "route", "channel", "delivery"):
        table.add_column(name)
    for row in rows:
        delivery = row.delivery if not row.error else f"{row.delivery}: {row.error}"
        table.add_row(
            row.created_at.isoformat(timespec="minutes"),
            row.ref,
            f"{row.kind} {row.transition}",
            row.route,
            row.channel or "—",
            escape(delivery),
        )
    console.print(table)


def _resolve_ref(store: Store, name: str) -> str:
    from okr_pipeline.run.select import resolve_name

    return resolve_name(name, store.active_key_results()).ref

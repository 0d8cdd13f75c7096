"""``okr explain KR``: why a KR has the status it has, with everything that decided it."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from okr_pipeline.cli.reading import open_store_to_read
from okr_pipeline.cli.render import age, format_value, judged
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.run.select import resolve_name

HISTORY_SHOWN = 10
ALERTS_SHOWN = 5


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def explain_kr(settings: Settings, name: str, console: Console) -> None:
    """Print the explanation of one KR.

    Raises:
        ConfigError: ``name`` matches no KR, or several.
    """
    now = datetime.now(UTC)
    store = open_store_to_read(settings)
    try:
        kr = resolve_name(name, store.active_key_results())
        rows = judged(
            [r for r in store.latest_status() if r.kr_id == kr.kr_id],
            now,
            settings.stale_after_periods,
        )
        history = store.kr_history(kr.kr_id, limit=HISTORY_SHOWN)
        states = store.alert_states([kr.kr_id])
        recent = store.recent_alerts(limit=ALERTS_SHOWN, ref=kr.ref)
        silences = [s for s in store.silences(now) if s.matches(kr.ref, now)]
    finally:
        store.close()
    row = rows[0] if rows else None
    unit = f" {kr.unit}" if kr.unit else ""
    console.print(f"[bold]{escape(kr.ref)}[/bold]: {escape(kr.title)}", highlight=False)
    console.print(
        f"  objective {kr.objective_key} ({kr.objective_type}, owner {kr.owner}, "
        f"success at {kr.success_level:g}); kind {kr.kind}; schedule '{kr.schedule}'; "
        f"source {kr.source_type}"
        + (f" on {kr.source['connection']}" if "connection" in kr.source else ""),
        highlight=False,
    )
    console.print(
        f"  baseline {format_value(kr.baseline)}{unit}"
        + (" (auto)" if kr.baseline_auto else "")
        + f" → target {format_value(kr.target_value)}{unit}"
        + (f" (written {kr.target})" if kr.target and kr.target.startswith(("+", "-")) else "")
        + (f"; floor {format_value(kr.floor)}{unit}" if kr.floor is not None else ""),
        highlight=False,
    )
    if row is None or row.status is None:
        console.print("  Not evaluated yet: run 'okr run'.")
    else:
        console.print(
            f"\n  Status [bold]{row.status}[/bold]: {escape(row.reason or '—')}", highlight=False
        )
        decided = "forecast" if row.reason.startswith("forecast") else "pace and level"
        if row.reason.startswith("pace only"):
            decided = "pace only (too few points, or too early in the cycle, for a trend)"
        console.print(f"  Decided by: {decided}", highlight=False)
        console.print(
            f"  Value {format_value(row.value)}{unit}, measured {age(row.measured_at, now)}; "
            f"progress {_pct(row.progress)} vs pace {_pct(row.expected_progress)}; "
            f"score {'—' if row.score is None else f'{row.score:.2f}'}",
            highlight=False,
        )
        if row.forecast_value is not None:
            band = ""
            if row.forecast_low is not None and row.forecast_high is not None:
                band = (
                    f" (band {format_value(row.forecast_low)} to {format_value(row.forecast_high)})"
                )
            score = "—" if row.forecast_score is None else f"{row.forecast_score:.2f}"
            console.print(
                f"  Forecast at cycle end {format_value(row.forecast_value)}{unit}{band}, "
                f"score {score}",
                highlight=False,
            )
        if row.error_message:
            console.print(
                f"  Last error: {escape(row.error_message)}; last good value "
                f"{format_value(row.last_good_value)}{unit} {age(row.last_good_at, now)}",
                highlight=False,
            )
    if history:
        table = Table(title="History (newest first)", title_justify="left")
        for column in ("as of", "measured", "value", "outcome"):
            table.add_column(column)
        for m in history:
            table.add_row(
                m.as_of.isoformat(timespec="minutes"),
                age(m.measured_at, now),
                format_value(m.value),
                m.outcome if not m.error_message else f"{m.outcome}: {escape(m.error_message)}",
            )
        console.print(table)
    for (_, kind), state in sorted(states.items()):
        since = state.active_since.isoformat(timespec="minutes")
        # A firing no channel received leaves the alert pending, to be sent next run.
        unsent = state.phase == "pending" and any(
            a.kind == kind
            and a.transition == "firing"
            and a.delivery == "failed"
            and a.created_at >= state.active_since
            for a in recent
        )
        console.print(
            f"  Alert {kind}: {state.phase} since {since} ({state.active_count} evaluations)"
            + ("; its firing failed to send and is sent again next run" if unsent else ""),
            highlight=False,
        )
    for silence in silences:
        console.print(
            f"  Silenced until {silence.until.isoformat(timespec='minutes')} "
            f"(silence {silence.id}): {escape(silence.reason)}",
            highlight=False,
        )
    for alert in recent:
        console.print(
            f"  {alert.created_at.isoformat(timespec='minutes')} {alert.kind} "
            f"{alert.transition} → {alert.route}: {alert.delivery}"
            + (f" ({escape(alert.error)})" if alert.error else ""),
            highlight=False,
        )

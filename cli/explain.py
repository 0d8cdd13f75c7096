"""``okr explain KR``: why a KR has the status it has, with everything that decided it."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from okr_pipeline.cli.reading import open_store_to_read
from okr_pipeline.cli.render import age, format_value, judged
from okr_pipeline.connectors.errors import short_message
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.run.select import resolve_name

HISTORY_SHOWN = 10
ALERTS_SHOWN = 5


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


LEVEL_KINDS = ("at_least", "at_most")


def deciding_rule(kind: str, reason: str, success_level: float, level: str = "it") -> str:
    """Which rule set the status, in words, from the KR's kind and the evaluation's reason.

    ``at_least``/``at_most`` KRs are judged on today's value against their level (PRODUCT:
    1.0 while the value holds the level); ``increase``/``decrease`` KRs on the forecast's
    score against the objective's success level, or on pace while there is no trend.
    ``level`` names the target of a level KR ("95 %").
    """
    if reason.startswith("holding the level"):
        side = "at or above" if kind == "at_least" else "at or below"
        return (
            f"the level: today's value is {side} {level}, so on_track (the forecast does not "
            "decide)"
        )
    if reason.startswith("level broken"):
        return (
            f"the level: today's value broke {level}; at_risk while its score stays >= "
            f"{success_level:g}, else off_track (the forecast does not decide)"
        )
    if reason.startswith("forecast"):
        return (
            f"the forecast: its score at cycle end against the success level {success_level:g} "
            "(at_risk within 0.1 under it)"
        )
    if reason.startswith("pace only"):
        return "pace only (too few points, or too early in the cycle, for a trend)"
    if reason.startswith("at target"):
        return "the target: reached, so on_track whatever the forecast"
    if reason.startswith("cycle over"):
        return "the final score (the cycle is over)"
    if kind == "milestone":
        return "the milestone: done or not, and how much of the cycle is left"
    if reason.startswith("no good value"):
        return "staleness: no good value for too long, so the KR cannot be judged (stale)"
    return "no value to judge (see the status)"


def forecast_role(
    kind: str, reason: str, forecast_score: float | None, success_level: float
) -> str:
    """What the forecast means for this KR: whether it decided the status, and if not why."""
    if reason.startswith("forecast"):
        return f"this decided the status (vs success level {success_level:g})"
    if kind in LEVEL_KINDS:
        warning = (
            "; the trend leads out of the level"
            if forecast_score is not None and forecast_score < 1.0
            else ""
        )
        return f"shown, not used: a level KR is judged on today's value{warning}"
    return "shown, not used for this status"


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
        level = f"{format_value(kr.target_value)}{unit}"
        rule = deciding_rule(kr.kind, row.reason, kr.success_level, level)
        console.print(f"  Decided by: {escape(rule)}", highlight=False)
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
                f"which would score {score}: "
                + forecast_role(kr.kind, row.reason, row.forecast_score, kr.success_level),
                highlight=False,
            )
        if row.error_message:
            console.print(
                f"  Last good value {format_value(row.last_good_value)}{unit}, "
                f"{age(row.last_good_at, now)}",
                highlight=False,
            )
            # The whole error (the run printed one short line of it): request and driver text.
            console.print(f"  Error in full: {escape(row.error_message)}", highlight=False)
    if history:
        table = Table(title="History (newest first)", title_justify="left")
        for column in ("as of", "measured", "value", "outcome"):
            table.add_column(column)
        for m in history:
            table.add_row(
                m.as_of.isoformat(timespec="minutes"),
                age(m.measured_at, now),
                format_value(m.value),
                m.outcome
                if not m.error_message
                else f"{m.outcome}: {escape(short_message(m.error_message))}",
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

"""Checks a run makes before it starts, without Prefect: so that a mistake is told at once.

``okr run`` calls them before Prefect is imported (which takes seconds), and the flow calls
them again for runs started elsewhere (a deployment's parameters).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from okr_pipeline.okr_core.alerting.routing import RoutingConfig, load_routing, secret_names
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.names import unknown_name_message
from okr_pipeline.okr_core.settings import Settings

#: Tolerated clock skew before an as-of counts as "in the future".
FUTURE_TOLERANCE = timedelta(minutes=1)


def check_as_of(as_of: datetime, now: datetime, allow_future: bool) -> None:
    """Refuse an as-of in the future: its values would stand as the latest ones.

    Raises:
        ConfigError: ``as_of`` is later than now (beyond a minute of clock skew).
    """
    if not allow_future and as_of > now + FUTURE_TOLERANCE:
        raise ConfigError(
            f"--as-of {as_of.isoformat(timespec='seconds')} is in the future (now "
            f"{now.isoformat(timespec='seconds')}): its values would stand as each KR's "
            "latest until that time. Pass --allow-future to measure it anyway."
        )


def due_time(now: datetime, scheduled: datetime | None) -> datetime:
    """When to judge which KRs are due: the run's scheduled start if it started early.

    A run scheduled for 21:35:00 may start at 21:34:59.9; judged by the wall clock, the
    KRs due at 21:35 would not be due yet and would wait a whole period.
    """
    if scheduled is None:
        return now
    return max(now, scheduled.astimezone(UTC))


def load_alert_routing(settings: Settings) -> RoutingConfig:
    """Read and check ``alerts.yaml``: its syntax, and that every secret it names exists.

    A run reads it before measuring, so that a mistake in it is reported at once rather
    than after the run's work is done.

    Raises:
        ConfigError: the file is invalid, or a channel names an unknown secret.
    """
    path = settings.resolved_alerts_path()
    routing = load_routing(path)
    for route in [*routing.routes, routing.default_route]:
        for channel in route.channels:
            for name in secret_names(channel):
                if name not in settings.secrets:
                    raise ConfigError(
                        f"{path.name}: route '{route.name}': "
                        + unknown_name_message("secret", name, settings.secrets)
                    )
    return routing

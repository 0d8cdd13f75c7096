"""Quiet defaults for Prefect, applied before Prefect is first imported.

Prefect reads its settings when it is imported. Left to its defaults, the temporary server
that ``okr run`` starts when no Prefect API is configured logs errors about analytics and
prints its own progress lines; a successful run must print nothing of the kind. Every value
is only a default: a user's own ``PREFECT_*`` variables or profile win.
"""

from __future__ import annotations

import os

QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


# Commands that print their own summary keep Prefect's log lines off the terminal; they
# still reach the Prefect API (and so the UI) through its own log handler.
CONSOLE_OFF = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"}


def apply_quiet_defaults(*, console_logs: bool = True) -> None:
    """Set Prefect's quiet defaults in this process's environment where they are unset.

    Args:
        console_logs: Keep Prefect's own log lines on the terminal (``okr serve`` does;
            ``okr run`` and ``okr demo`` print their own summary instead).
    """
    for name, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not console_logs:
        for name, value in CONSOLE_OFF.items():
            os.environ.setdefault(name, value)

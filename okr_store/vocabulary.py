"""The words the store's columns allow: outcomes, statuses, run states, alert fields.

Plain tuples, apart from the SQLAlchemy models that spell them out as CHECK constraints
(:mod:`okr_store.models`), so that the records (:mod:`okr_store.records`) and the commands
that only read can name them without importing the ORM.
"""

from __future__ import annotations

OUTCOMES = ("ok", "no_data", "error")
STATUSES = ("on_track", "at_risk", "off_track", "no_data", "error", "stale")
#: ``partial``: some KRs failed, others were measured; ``crashed``: the run stopped without
#: closing its row (killed), and a later run closed it when its lease ran out.
RUN_STATUSES = ("running", "completed", "partial", "failed", "crashed")
# The values of okr_core.alerting.model's Literal types, spelled out because the migrations
# must keep describing the same CHECK constraints (a test compares them).
ALERT_KINDS = ("off_track", "source_failing", "stale")
ALERT_PHASES = ("pending", "firing")
TRANSITIONS = ("firing", "repeat", "resolved")
#: ``recorded``: the route has no channel (no ``alerts.yaml``): kept for ``okr alerts``, sent
#: nowhere, and counted as delivered (there is nowhere to try again).
DELIVERIES = ("sent", "silenced", "inhibited", "failed", "recorded", "dry_run")
#: ``measured``: a metric source answered; ``checkin``: a person entered the value.
MEASUREMENT_KINDS = ("measured", "checkin")
#: What started a run: ``run`` (``okr run``, the schedule), ``backfill``, ``checkin`` (a value
#: entered by hand, scored at once) or ``replay`` (values spooled by a run the store failed).
RUN_TRIGGERS = ("run", "backfill", "checkin", "replay")
#: Longest author name kept with a check-in or a note.
AUTHOR_LENGTH = 200

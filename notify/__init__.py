"""Senders of the alerter: grouped messages to channels, records of every alert, events.

- ``channels``: one channel URL → a redacted name, its secrets filled in, one delivery
  (Apprise for every scheme it knows, ``prefect-block://<type>/<name>`` for Prefect blocks).
- ``send``: every message to every channel of its route, with retries; one record per
  notification and channel; records of held-back (silenced, inhibited) notifications.
- ``events``: one Prefect event per state transition.

The contract is ``docs/alerting.md`` (section "Senders").
"""

from __future__ import annotations

from okr_pipeline.notify.events import emit_transition_events, event_name
from okr_pipeline.notify.send import records_for_held, send_messages

__all__ = ["emit_transition_events", "event_name", "records_for_held", "send_messages"]

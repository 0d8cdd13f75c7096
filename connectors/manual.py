"""The ``manual`` source: a KR whose values people enter by hand (``okr checkin``, the web form).

::

    source:
      type: manual

No outside call: a survey done by hand or a milestone has no system to ask. The run reads the
latest check-in at or before its as-of from the store (``okr_pipeline.run.manual``), and the
value then flows through scoring, status, forecast and alerts like a measured one.

The config has no field but ``type``: there is nothing to connect to and no secret. A check-in
is recorded by ``okr_pipeline.run.checkin.record_checkin`` (``okr checkin KR VALUE``, the
dashboard's form), with its author and note. ``fetch`` is never called by a run; called
directly (``okr source test``) it refuses with how to record a value. A manual KR declares its
baseline (``baseline: auto`` would need a value nobody entered at the cycle's start) and keeps
its ``schedule``: a run scores it on that schedule, and it goes ``stale`` when nobody checks in
for ``stale_after_periods`` of them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import Field

from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceContext
from okr_pipeline.connectors.errors import FatalSourceError

__all__ = ["ManualSource", "ManualSourceConfig"]


class ManualSourceConfig(BaseSourceConfig):
    """A KR whose values are checked in by people."""

    type: Literal["manual"] = Field(
        description="A KR whose values people check in (okr checkin, or the dashboard's form)."
    )

    def uses_as_of(self) -> bool:  # noqa: D102 - documented on the base
        # A check-in is recorded for an as-of, and a backfill reads the one in force then.
        return True


class ManualSource(BaseSource[ManualSourceConfig]):
    """Values entered by people; the run reads them from the store."""

    type_name: ClassVar[str] = "manual"
    config_model: ClassVar[type[BaseSourceConfig]] = ManualSourceConfig
    reads: ClassVar[str] = "values people check in by hand (okr checkin, the dashboard)"
    authentication: ClassVar[str] = "none (writes on the dashboard need its token)"
    tested_against: ClassVar[str] = "no external service (read from the store)"

    def fetch(self, config: ManualSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Refuse: a manual KR has no system to ask; its values are check-ins.

        Raises:
            FatalSourceError: Always, with how to record a value.
        """
        raise FatalSourceError(
            f"{ctx.kr_ref}: a manual KR is not fetched; record a value with "
            f"'okr checkin {ctx.kr_ref} VALUE'"
        )

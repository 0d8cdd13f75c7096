"""The store's reads: every query of :class:`okr_store.store.Store`, on its own connection.

:class:`okr_store.store.Store` inherits them from :class:`StoreReads` and adds the writes
(one transaction each), so the store's public API is one class; this module only keeps the
read queries' facade apart from the writes. The queries themselves live in
:mod:`okr_store.queries`, :mod:`okr_store.status_query`, :mod:`okr_store.alerts` and
:mod:`okr_store.notes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from okr_pipeline.okr_store import alerts as _alerts
from okr_pipeline.okr_store import notes as _notes
from okr_pipeline.okr_store import queries, status_query
from okr_pipeline.okr_store import sync as _sync
from okr_pipeline.okr_store.history_read import pg_history
from okr_pipeline.okr_store.models import Meta
from okr_pipeline.okr_store.records import (
    AlertRow,
    MeasurementRow,
    NoteRow,
    RunRow,
    StatusRow,
    StoredKeyResult,
    StoredMeasurement,
)

if TYPE_CHECKING:
    from okr_pipeline.okr_core.alerting.model import AlertKind, AlertState, Silence


class StoreReads:
    """The reads of the store (:class:`okr_store.store.Store` is one of these).

    Attributes:
        engine: The store's engine; each read opens and closes one connection on it.
    """

    engine: Engine

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- definitions -------------------------------------------------------------------

    def definitions_fingerprint(self) -> str | None:
        """Return the fingerprint of the definitions last synchronised, or None.

        Compare it with ``okr_core.loader.fingerprint(path)`` to skip loading and syncing
        unchanged files.
        """
        with self._read() as conn:
            return conn.execute(
                sa.select(Meta.value).where(Meta.key == _sync.FINGERPRINT_KEY)
            ).scalar_one_or_none()

    def active_key_results(
        self, at: datetime | None = None, kr_ids: Iterable[int] | None = None
    ) -> list[StoredKeyResult]:
        """Return every KR to fetch and score: not archived, objective not archived.

        Args:
            at: read each KR's last measurement as it stood as of this time (a run for
                an earlier as-of sees the KR as it was then); None for no bound.
            kr_ids: only these KRs (those still active); None for all.
        """
        with self._read() as conn:
            ids = None if kr_ids is None else list(kr_ids)
            return queries.active_key_results(conn, at, ids)

    # -- runs --------------------------------------------------------------------------

    def runs(self, limit: int = 20) -> list[RunRow]:
        """Return the latest ``limit`` runs, newest first."""
        with self._read() as conn:
            return queries.runs(conn, limit)

    # -- history and status ------------------------------------------------------------

    def history(
        self,
        kr_ids: Iterable[int],
        since: datetime | None = None,
        until: datetime | None = None,
        before: datetime | None = None,
    ) -> dict[int, list[tuple[datetime, Decimal]]]:
        """Return each KR's successful values ``(as_of, value)``, oldest first.

        Points are placed at the time they describe (``as_of``), not when they were fetched,
        so a backfill with ``--as-of`` builds a real trend.

        Args:
            kr_ids: the KRs; each gets an entry (empty if no values).
            since: only values as of this time or later (e.g. the cycle start).
            until: only values as of this time or earlier.
            before: only values as of strictly before this time.
        """
        with self._read() as conn:
            if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
                # One array row per KR: a run reads 45 points a KR mid-quarter. This
                # connection is the read's own, so the time zone it sets ends with it.
                return pg_history(conn, sorted(set(kr_ids)), since, until, before)
            return queries.history(conn, kr_ids, since, until, before)

    def last_good_before(self, kr_ids: Iterable[int], before: datetime) -> dict[int, datetime]:
        """Return the as-of of each KR's latest good value before ``before`` (if any)."""
        with self._read() as conn:
            return queries.last_good_before(conn, kr_ids, before)

    def measurements(
        self,
        kr_ids: Iterable[int],
        *,
        after: datetime | None = None,
        at: datetime | None = None,
    ) -> list[StoredMeasurement]:
        """Return the KRs' current measurements (after or at an as-of), by KR and as-of.

        Each says its kind (``measured`` or ``checkin``) and, for a check-in, its author
        and note.
        """
        with self._read() as conn:
            return queries.measurements(conn, kr_ids, after=after, at=at)

    def evaluation_times(
        self,
        kr_ids: Iterable[int],
        *,
        after: datetime | None = None,
        at: datetime | None = None,
    ) -> list[tuple[int, int, datetime]]:
        """Return ``(kr_id, run_id, as_of)`` of the KRs' evaluations (after or at an as-of)."""
        with self._read() as conn:
            return queries.evaluation_times(conn, kr_ids, after=after, at=at)

    def latest_status(
        self, cycle: str | None = None, at: datetime | None = None
    ) -> list[StatusRow]:
        """Return where each non-archived KR stands, ordered by cycle, objective, KR.

        Args:
            cycle: only this cycle's KRs (by name); all cycles if None.
            at: as it stood as of this time (later as-ofs ignored); None for no bound.
        """
        with self._read() as conn:
            return status_query.latest_status(conn, cycle, at)

    def kr_history(self, kr_id: int, limit: int = 20) -> list[MeasurementRow]:
        """Return the KR's latest ``limit`` measurements (any outcome), newest first.

        Check-ins are among them (``kind`` ``checkin``, with their author and note).
        """
        with self._read() as conn:
            return _alerts.kr_history(conn, kr_id, limit)

    # -- notes -------------------------------------------------------------------------

    def notes(
        self,
        kr_ids: Iterable[int] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[NoteRow]:
        """Return the notes of these KRs (all if None), by KR and as-of, oldest first."""
        with self._read() as conn:
            return _notes.notes(conn, kr_ids, since=since, until=until)

    # -- alerting ----------------------------------------------------------------------

    def alert_states(
        self, kr_ids: Iterable[int] | None = None
    ) -> dict[tuple[int, AlertKind], AlertState]:
        """Return the stored alert states (pending or firing) by ``(kr_id, kind)``.

        A (KR, kind) with no entry is normal.

        Args:
            kr_ids: only these KRs; all if None.
        """
        with self._read() as conn:
            return _alerts.alert_states(conn, kr_ids)

    def silences(self, now: datetime | None = None, include_expired: bool = False) -> list[Silence]:
        """Return the silences not removed, oldest first.

        Args:
            now: only those still active at ``now`` (``until`` after it); if None, every
                silence not removed.
            include_expired: with ``now``, also those that have expired.
        """
        with self._read() as conn:
            return _alerts.silences(conn, now, include_expired)

    def recent_alerts(self, limit: int = 50, ref: str | None = None) -> list[AlertRow]:
        """Return the latest ``limit`` alert records, newest first.

        Args:
            limit: at most this many.
            ref: only this KR (``"objective/kr"``) or objective (``"objective"``), in any
                cycle.
        """
        with self._read() as conn:
            return _alerts.recent_alerts(conn, limit, ref)

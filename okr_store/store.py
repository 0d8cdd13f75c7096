"""The store: a thin repository over one SQLAlchemy engine.

Writes run in one transaction each (``BEGIN IMMEDIATE`` on SQLite, so concurrent writers
queue on the busy timeout instead of failing); reads run on their own connection. The
heavy lifting lives in :mod:`okr_store.sync`, :mod:`okr_store.queries` and
:mod:`okr_store.alerts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from okr_store import alerts as _alerts
from okr_store import queries
from okr_store import sync as _sync
from okr_store.bulk import bulk_insert
from okr_store.db import SQLITE_BEGIN, make_engine, upgrade
from okr_store.models import RUN_STATUSES, Evaluation, KeyResult, Measurement, Meta, Run
from okr_store.records import (
    AlertRow,
    EvaluationRecord,
    MeasurementRecord,
    MeasurementRow,
    RunCounts,
    RunRow,
    StatusRow,
    StoredKeyResult,
    SyncResult,
)

if TYPE_CHECKING:
    from okr_core.alerting.model import AlertKind, AlertRecord, AlertState, Silence
    from okr_core.loader import OkrSet

_MEASUREMENT_COLUMNS = (
    "run_id", "kr_id", "measured_at", "as_of", "value", "outcome", "error_message", "error_kind",
)  # fmt: skip
_EVALUATION_COLUMNS = (
    "run_id", "kr_id", "evaluated_at", "value", "progress", "score", "expected_progress",
    "forecast_value", "forecast_score", "status", "reason", "forecast_low", "forecast_high",
)  # fmt: skip


class Store:
    """Persistence of definitions, runs, measurements and evaluations.

    Args:
        engine: an engine from :func:`okr_store.db.make_engine` whose schema is at head
            (see :func:`okr_store.db.upgrade` or :meth:`Store.open`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Create the engine for ``url``, migrate it to head and return a store on it."""
        engine = make_engine(url)
        upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                yield conn

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

    def sync_definitions(self, okr_set: OkrSet) -> SyncResult:
        """Synchronise cycles, objectives and KRs with ``okr_set``, in one transaction.

        Matches by YAML ids; edits update in place, removed KRs and objectives are archived
        (history kept), reappearing ones unarchived. Stores ``okr_set.fingerprint``.

        Args:
            okr_set: the loaded OKR files.

        Returns:
            What changed, counted in KRs (and objectives).

        Raises:
            okr_core.errors.ConfigError: a cycle or objective is declared twice
                inconsistently across files.
        """
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                # Two workers syncing at once would both insert the same new KR.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _sync.PG_SYNC_LOCK}
                )
            return _sync.sync_definitions(conn, okr_set)

    def active_key_results(self) -> list[StoredKeyResult]:
        """Return every KR to fetch and score: not archived, objective not archived."""
        with self._read() as conn:
            return queries.active_key_results(conn)

    def set_auto_baseline(self, kr_id: int, value: Decimal) -> bool:
        """Store the measured baseline of a ``baseline: auto`` KR and resolve its target.

        The baseline is measured once: if one is stored already, it is kept.

        Args:
            kr_id: the KR.
            value: the value measured at cycle start.

        Returns:
            True if stored, False if the KR already had its baseline.

        Raises:
            KeyError: no such KR.
            ValueError: the KR's baseline is not ``auto``.
        """
        with self._write() as conn:
            row = conn.execute(
                sa.select(
                    KeyResult.baseline_auto, KeyResult.baseline, KeyResult.kind, KeyResult.target
                ).where(KeyResult.id == kr_id)
            ).one_or_none()
            if row is None:
                raise KeyError(f"no key result with id {kr_id}")
            if not row.baseline_auto:
                raise ValueError(f"key result {kr_id} has a declared baseline, not 'auto'")
            if row.baseline is not None:
                return False
            written: str | None = row.target
            target: Decimal | str | None = written
            if written is not None and not written.startswith(("+", "-")):
                target = Decimal(written)
            conn.execute(
                sa.update(KeyResult)
                .where(KeyResult.id == kr_id)
                .values(
                    baseline=value,
                    target_value=_sync.resolved_target(row.kind, target, value),
                )
            )
            return True

    # -- runs ----------------------------------------------------------------------------

    def start_run(self, as_of: datetime, flow_run_id: str | None = None) -> int:
        """Record the start of a run and return its id.

        Args:
            as_of: the time the run evaluates sources against (aware).
            flow_run_id: the Prefect flow run id, if any.
        """
        with self._write() as conn:
            result = conn.execute(
                sa.insert(Run).values(
                    started_at=datetime.now(UTC),
                    as_of=as_of,
                    flow_run_id=flow_run_id,
                    total=0,
                    ok=0,
                    no_data=0,
                    error=0,
                    status="running",
                )
            )
            run_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
            assert isinstance(run_id, int)
            return run_id

    def record_results(
        self,
        run_id: int,
        measurements: Sequence[MeasurementRecord],
        evaluations: Sequence[EvaluationRecord],
    ) -> None:
        """Store a run's measurements and evaluations, all or nothing.

        Inserted in bulk (COPY on PostgreSQL, executemany elsewhere) in one transaction: if
        any row is invalid (unknown KR, a value on a failed measurement, a float instead of
        a Decimal, a naive datetime, an unknown status), nothing of the call is stored and
        the error propagates (a ``sqlalchemy.exc.StatementError`` subclass).

        Args:
            run_id: from :meth:`start_run`.
            measurements: one per KR fetched.
            evaluations: one per KR scored.
        """
        # Tuples straight from the attributes: dataclasses.asdict deep-copies every value
        # and alone costs more than the insert.
        measurement_rows = [
            (run_id, m.kr_id, m.measured_at, m.as_of, m.value, m.outcome, m.error_message,
             m.error_kind)
            for m in measurements
        ]  # fmt: skip
        evaluation_rows = [
            (run_id, e.kr_id, e.evaluated_at, e.value, e.progress, e.score, e.expected_progress,
             e.forecast_value, e.forecast_score, str(e.status), e.reason, e.forecast_low,
             e.forecast_high)
            for e in evaluations
        ]  # fmt: skip
        with self._write() as conn:
            bulk_insert(conn, Measurement.__table__, _MEASUREMENT_COLUMNS, measurement_rows)
            bulk_insert(conn, Evaluation.__table__, _EVALUATION_COLUMNS, evaluation_rows)

    def finish_run(
        self,
        run_id: int,
        counts: RunCounts | Mapping[str, int],
        status: str = "completed",
    ) -> None:
        """Record the end of a run.

        Args:
            run_id: from :meth:`start_run`.
            counts: KRs handled by outcome (a :class:`RunCounts` or a mapping with the same
                keys: total, ok, no_data, error).
            status: one of ``completed``, ``partial``, ``failed``.

        Raises:
            KeyError: no such run.
            ValueError: invalid status.
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"invalid run status {status!r}; valid: {', '.join(RUN_STATUSES)}")
        values: dict[str, Any] = asdict(
            counts if isinstance(counts, RunCounts) else RunCounts(**counts)
        )
        with self._write() as conn:
            result = conn.execute(
                sa.update(Run)
                .where(Run.id == run_id)
                .values(finished_at=datetime.now(UTC), status=status, **values)
            )
            if result.rowcount != 1:
                raise KeyError(f"no run with id {run_id}")

    def runs(self, limit: int = 20) -> list[RunRow]:
        """Return the latest ``limit`` runs, newest first."""
        with self._read() as conn:
            return queries.runs(conn, limit)

    # -- reads ---------------------------------------------------------------------------

    def history(
        self,
        kr_ids: Iterable[int],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[int, list[tuple[datetime, Decimal]]]:
        """Return each KR's successful values ``(as_of, value)``, oldest first.

        Points are placed at the time they describe (``as_of``), not when they were fetched,
        so a backfill with ``--as-of`` builds a real trend.

        Args:
            kr_ids: the KRs; each gets an entry (empty if no values).
            since: only values as of this time or later (e.g. the cycle start).
            until: only values as of this time or earlier.
        """
        with self._read() as conn:
            return queries.history(conn, kr_ids, since, until)

    def latest_status(self, cycle: str | None = None) -> list[StatusRow]:
        """Return where each non-archived KR stands, ordered by cycle, objective, KR.

        Args:
            cycle: only this cycle's KRs (by name); all cycles if None.
        """
        with self._read() as conn:
            return queries.latest_status(conn, cycle)

    def kr_history(self, kr_id: int, limit: int = 20) -> list[MeasurementRow]:
        """Return the KR's latest ``limit`` measurements (any outcome), newest first."""
        with self._read() as conn:
            return _alerts.kr_history(conn, kr_id, limit)

    # -- alerting ------------------------------------------------------------------------

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

    def apply_alert_step(
        self,
        states: Mapping[tuple[int, AlertKind], AlertState],
        cleared: Iterable[tuple[int, AlertKind]],
        records: Sequence[AlertRecord],
    ) -> None:
        """Store one alerting step, all or nothing, in one transaction.

        Args:
            states: new non-normal states by ``(kr_id, kind)``; inserted or replaced.
            cleared: keys that became normal; their states are deleted (absent ones ignored).
            records: one per notification (sent, silenced, inhibited, failed or dry run).
                Decimal and datetime values in a payload are stored as text.

        Raises:
            ValueError: a state keyed by another (kr_id, kind) than its own, or a key both
                in ``states`` and ``cleared``; nothing is stored.
            TypeError: a payload value JSON cannot represent; nothing is stored.
            sqlalchemy.exc.StatementError: a row is refused (unknown KR or run, unknown
                kind or delivery, naive datetime); nothing is stored.
        """
        with self._write() as conn:
            _alerts.apply_alert_step(conn, states, cleared, records)

    def add_silence(self, target: str, until: datetime, reason: str, now: datetime) -> Silence:
        """Silence the alerts of a KR (``objective/kr``) or an objective until ``until``.

        Raises:
            ValueError: an empty target, or ``until`` not after ``now``.
        """
        with self._write() as conn:
            return _alerts.add_silence(conn, target, until, reason, now)

    def silences(self, now: datetime | None = None, include_expired: bool = False) -> list[Silence]:
        """Return the silences not removed, oldest first.

        Args:
            now: only those still active at ``now`` (``until`` after it); if None, every
                silence not removed.
            include_expired: with ``now``, also those that have expired.
        """
        with self._read() as conn:
            return _alerts.silences(conn, now, include_expired)

    def remove_silence(self, silence_id: int, now: datetime) -> bool:
        """End an active silence at ``now`` (kept, marked removed).

        Returns:
            False if there is no such silence, or it has expired or was removed already.
        """
        with self._write() as conn:
            return _alerts.remove_silence(conn, silence_id, now)

    def recent_alerts(self, limit: int = 50, ref: str | None = None) -> list[AlertRow]:
        """Return the latest ``limit`` alert records, newest first.

        Args:
            limit: at most this many.
            ref: only this KR (``"objective/kr"``) or objective (``"objective"``), in any
                cycle.
        """
        with self._read() as conn:
            return _alerts.recent_alerts(conn, limit, ref)

"""The store: a thin repository over one SQLAlchemy engine.

Writes run in one transaction each (``BEGIN IMMEDIATE`` on SQLite, so concurrent writers
queue on the busy timeout instead of failing); reads run on their own connection, in
:mod:`okr_store.store_reads` (which :class:`Store` inherits). The heavy lifting lives in
:mod:`okr_store.sync`, :mod:`okr_store.baselines`, :mod:`okr_store.runs`,
:mod:`okr_store.results`, :mod:`okr_store.queries` and :mod:`okr_store.alerts`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from okr_pipeline.okr_store import alerts as _alerts
from okr_pipeline.okr_store import baselines as _baselines
from okr_pipeline.okr_store import notes as _notes
from okr_pipeline.okr_store import results as _results
from okr_pipeline.okr_store import runs as _runs
from okr_pipeline.okr_store import sync as _sync
from okr_pipeline.okr_store.db import SQLITE_BEGIN, make_engine, upgrade
from okr_pipeline.okr_store.records import (
    EvaluationRecord,
    MeasurementRecord,
    NoteRow,
    RunCounts,
    RunRow,
    SyncResult,
)
from okr_pipeline.okr_store.results_writer import ResultsWriter, RowsWriter, gains_from_thread
from okr_pipeline.okr_store.store_reads import StoreReads

if TYPE_CHECKING:
    from okr_pipeline.okr_core.alerting.model import AlertKind, AlertRecord, AlertState, Silence
    from okr_pipeline.okr_core.loader import OkrSet


class Store(StoreReads):
    """Persistence of definitions, runs, measurements and evaluations.

    The reads (``active_key_results``, ``latest_status``, ``history``, ``recent_alerts``
    ...) come from :class:`okr_store.store_reads.StoreReads`; the writes are here.

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

    # -- definitions -------------------------------------------------------------------

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
            return _baselines.set_auto_baseline(conn, kr_id, value)

    # -- runs --------------------------------------------------------------------------

    def start_run(
        self,
        as_of: datetime,
        flow_run_id: str | None = None,
        lease_until: datetime | None = None,
        trigger: str = "run",
    ) -> int:
        """Record the start of a run and return its id.

        Args:
            as_of: the time the run evaluates sources against (aware).
            flow_run_id: the Prefect flow run id, if any.
            lease_until: until when the run counts as alive unless it renews the lease
                (:meth:`renew_lease`); a later run closes it as ``crashed`` after that.
            trigger: what started it: ``run``, ``backfill``, ``checkin`` or ``replay``.

        Raises:
            ValueError: an unknown trigger.
        """
        with self._write() as conn:
            return _runs.start_run(conn, as_of, flow_run_id, lease_until, trigger)

    def record_results(
        self,
        run_id: int,
        measurements: Sequence[MeasurementRecord],
        evaluations: Sequence[EvaluationRecord],
        replacing: Collection[int] | None = None,
    ) -> None:
        """Store a run's measurements and evaluations, all or nothing.

        A KR has one current measurement and one evaluation per as-of: rows already
        stored at the same (KR, as-of) are replaced (the old measurement is kept in
        ``superseded_measurements`` for audit, read by nothing as history). Inserted in
        bulk (COPY on PostgreSQL, executemany elsewhere) in one transaction: if any row is
        invalid (unknown KR, a value on a failed measurement, a float instead of a
        Decimal, a naive datetime, an unknown status, two rows for one KR and as-of),
        nothing of the call is stored and the error propagates (a
        ``sqlalchemy.exc.StatementError`` subclass).

        Args:
            run_id: from :meth:`start_run`.
            measurements: one per KR fetched.
            evaluations: one per KR scored.
            replacing: the KRs that may have rows at these as-ofs already (a caller that
                knows saves the look-ups for the others); None: any of them. If another
                writer stored one meanwhile, the call is made again with None.
        """
        try:
            with self._write() as conn:
                _results.write_results(conn, run_id, measurements, evaluations, replacing)
        except sa.exc.IntegrityError:
            if replacing is None:
                raise
            with self._write() as conn:
                _results.write_results(conn, run_id, measurements, evaluations, None)

    @contextmanager
    def writing_results(
        self,
        run_id: int,
        measurements: Sequence[MeasurementRecord],
        replacing: Collection[int] | None = None,
    ) -> Iterator[RowsWriter]:
        """:meth:`record_results`, the rows handed over as they are made.

        Yields a function to call with each batch of evaluations, and the measurements
        that came with them if they were not all known at the start. On PostgreSQL a
        thread writes the first measurements at once and each batch as it comes (see
        :mod:`okr_store.results_writer`), so the server stores while the run evaluates;
        elsewhere everything is written on leaving the block. Either way it is one
        transaction, committed on leaving the block and rolled back if the block raises.

        Args:
            run_id: from :meth:`start_run`.
            measurements: the run's measurements known at the start (may be none).
            replacing: as for :meth:`record_results`.
        """
        measured: list[MeasurementRecord] = list(measurements)
        added: list[EvaluationRecord] = []
        writer = (
            ResultsWriter(self.engine, run_id, measurements, replacing)
            if gains_from_thread(self.engine)
            else None
        )

        def add(
            evaluations: Sequence[EvaluationRecord], measurements: Sequence[MeasurementRecord] = ()
        ) -> None:
            measured.extend(measurements)
            added.extend(evaluations)
            if writer is not None:
                writer.add(evaluations, measurements)

        if writer is None:
            yield add
            self.record_results(run_id, measured, added, replacing)
            return
        try:
            yield add
        except BaseException:
            writer.abort()
            raise
        try:
            writer.finish()
        except sa.exc.IntegrityError:
            if replacing is None:
                raise
            # Another writer stored a row at one of these as-ofs meanwhile: as record_results.
            self.record_results(run_id, measured, added, None)

    def replace_evaluations(self, evaluations: Sequence[tuple[int, EvaluationRecord]]) -> None:
        """Replace the evaluations at their (KR, as-of) with these ``(run_id, row)`` pairs.

        Used to evaluate later as-ofs again once an earlier value arrived (a backfill), so
        that the history does not depend on the order the dates were measured in.
        """
        if not evaluations:
            return
        with self._write() as conn:
            _results.drop_evaluations(conn, ((e.kr_id, e.evaluated_at) for _, e in evaluations))
            _results.insert_evaluations(conn, evaluations)

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
            status: one of ``completed``, ``partial`` (some KRs failed), ``failed`` (all
                failed, or the run stopped on an error).

        Raises:
            KeyError: no such run.
            ValueError: invalid status.
        """
        values = _runs.end_values(counts, status)
        with self._write() as conn:
            _runs.finish_run(conn, run_id, values)

    def renew_lease(self, run_id: int, until: datetime) -> None:
        """Extend a running run's lease (its heartbeat)."""
        with self._write() as conn:
            _runs.renew_lease(conn, run_id, until)

    def close_crashed_runs(self, now: datetime) -> list[RunRow]:
        """Close as ``crashed`` the runs still ``running`` whose lease ran out before ``now``.

        Their process died without closing them (killed, machine lost). Runs from before
        leases existed (no lease) count as crashed too.

        Returns:
            The runs closed, as they were before.
        """
        with self._write() as conn:
            return _runs.close_crashed_runs(conn, now)

    # -- notes -------------------------------------------------------------------------

    def add_note(
        self, kr_id: int, as_of: datetime, text: str, author: str, created_at: datetime
    ) -> NoteRow:
        """Add a note to a KR at an as-of ("campaign paused this week"); return it.

        A check-in's value is written by the run that scores it (:meth:`record_results`,
        a measurement of kind ``checkin`` with its author and note); a note stands alone.

        Raises:
            ValueError: an empty text or author.
            sqlalchemy.exc.IntegrityError: no such KR.
        """
        with self._write() as conn:
            return _notes.add_note(conn, kr_id, as_of, text, author, created_at)

    # -- alerting ----------------------------------------------------------------------

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
            records: one per notification (sent, silenced, inhibited, failed, recorded or
                dry run).
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

    def remove_silence(self, silence_id: int, now: datetime) -> bool:
        """End an active silence at ``now`` (kept, marked removed).

        Returns:
            False if there is no such silence, or it has expired or was removed already.
        """
        with self._write() as conn:
            return _alerts.remove_silence(conn, silence_id, now)

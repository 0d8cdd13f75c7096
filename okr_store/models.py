"""SQLAlchemy models of the store: definitions, runs, and the values they produced.

Definitions (``cycles``, ``objectives``, ``key_results``) mirror the YAML files and are
synchronised by id; rows are archived, never deleted, so history stays attached.
Each run (``runs``) records one ``measurements`` row per KR it fetched and one
``evaluations`` row per KR it scored. ``meta`` holds small key/value facts such as the
fingerprint of the definitions last synchronised.

Alerting keeps three more tables: ``alert_states`` (the pending or firing alerts; a KR with
no row for a kind is normal), ``alerts`` (every notification, sent or not) and
``silences``.

A measurement is ``measured`` (a source answered) or a ``checkin`` (a person entered the
value, with its author and note); ``kr_notes`` holds notes on any KR ("campaign paused
this week"), each placed at an as-of of the KR's cycle.

The Alembic migrations in ``okr_store/migrations/versions`` must describe exactly these
tables; ``tests/okr_store/test_migrations.py`` checks that they agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from okr_pipeline.okr_store import vocabulary
from okr_pipeline.okr_store.types import ExactDecimal, UtcDateTime

#: Deterministic constraint names: Alembic batch mode on SQLite needs names to alter
#: constraints, and autogenerate compares them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Defined apart (the records and the reading commands name them without the ORM), and
# here too, where the CHECK constraints below are made of them.
OUTCOMES = vocabulary.OUTCOMES
STATUSES = vocabulary.STATUSES
RUN_STATUSES = vocabulary.RUN_STATUSES
ALERT_KINDS = vocabulary.ALERT_KINDS
ALERT_PHASES = vocabulary.ALERT_PHASES
TRANSITIONS = vocabulary.TRANSITIONS
DELIVERIES = vocabulary.DELIVERIES
MEASUREMENT_KINDS = vocabulary.MEASUREMENT_KINDS
RUN_TRIGGERS = vocabulary.RUN_TRIGGERS
AUTHOR_LENGTH = vocabulary.AUTHOR_LENGTH


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base with the naming convention and the project's column types."""

    if TYPE_CHECKING:
        # Every model here maps a plain Table (DeclarativeBase types it as FromClause).
        __table__: ClassVar[sa.Table]

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, TypeEngine[Any]]] = {
        datetime: UtcDateTime(),
        Decimal: ExactDecimal(),
        dict[str, Any]: sa.JSON(),
    }


class Cycle(Base):
    """An OKR cycle (usually a quarter), identified by its name."""

    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(sa.String(64))


class Objective(Base):
    """An objective of a cycle, identified by its YAML id (``key``) within the cycle."""

    __tablename__ = "objectives"
    __table_args__ = (
        sa.UniqueConstraint("cycle_id", "key"),
        sa.CheckConstraint("type IN ('aspirational', 'committed')", name="type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(sa.ForeignKey("cycles.id"))
    key: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.Text)
    owner: Mapped[str] = mapped_column(sa.String(200))
    type: Mapped[str] = mapped_column(sa.String(16))
    parent_key: Mapped[str | None] = mapped_column(sa.String(200))
    success_level: Mapped[float | None] = mapped_column(sa.Double)
    archived_at: Mapped[datetime | None]


class KeyResult(Base):
    """A key result, identified by its YAML id (``key``) within its objective."""

    __tablename__ = "key_results"
    __table_args__ = (sa.UniqueConstraint("objective_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    objective_id: Mapped[int] = mapped_column(sa.ForeignKey("objectives.id"))
    key: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.Text)
    unit: Mapped[str] = mapped_column(sa.String(64))
    # Declared or inferred by okr_core (KeyResultDef.effective_kind).
    kind: Mapped[str] = mapped_column(sa.String(16))
    baseline: Mapped[Decimal | None]
    baseline_auto: Mapped[bool] = mapped_column(sa.Boolean)
    # The target as written ("+20%", "120"), and the absolute value it resolves to; null
    # while it depends on an automatic baseline not measured yet.
    target: Mapped[str | None] = mapped_column(sa.String(200))
    target_value: Mapped[Decimal | None]
    floor: Mapped[Decimal | None]
    weight: Mapped[Decimal]
    schedule: Mapped[str] = mapped_column(sa.String(200))
    source_json: Mapped[dict[str, Any]]
    source_type: Mapped[str] = mapped_column(sa.String(64))
    definition_hash: Mapped[str] = mapped_column(sa.String(64))
    archived_at: Mapped[datetime | None]
    # The KR's ``alerts:`` override (AlertPolicyOverride dumped in JSON mode), or null.
    alert_policy: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON(none_as_null=True))


class Run(Base):
    """One execution of the pipeline over the active KRs."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        sa.Index(None, "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    as_of: Mapped[datetime]
    flow_run_id: Mapped[str | None] = mapped_column(sa.String(64))
    # A running run renews this while it works; a "running" row whose lease has run out
    # belongs to a process that died, and the next run closes it as "crashed".
    lease_until: Mapped[datetime | None]
    total: Mapped[int] = mapped_column(default=0)
    ok: Mapped[int] = mapped_column(default=0)
    no_data: Mapped[int] = mapped_column(default=0)
    error: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(16))
    # Runs stored before triggers were recorded were all "run"s (or backfills, unknowable).
    trigger: Mapped[str] = mapped_column(sa.String(16), server_default="run")


class Measurement(Base):
    """What a metric source returned for one KR as of one time (or why it returned nothing).

    A KR has at most one current measurement per ``as_of``: measuring the same as-of again
    replaces the row (the old one moves to ``superseded_measurements``). The database
    enforces it with a unique key, so no code path can add a second point to a history.
    """

    __tablename__ = "measurements"
    __table_args__ = (
        sa.UniqueConstraint("kr_id", "as_of"),
        sa.CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        sa.CheckConstraint(_in("kind", MEASUREMENT_KINDS), name="kind"),
        # A missing number is never a number: only "ok" rows carry a value, and all do.
        sa.CheckConstraint(
            "(outcome = 'ok' AND value IS NOT NULL) OR (outcome <> 'ok' AND value IS NULL)",
            name="value_iff_ok",
        ),
        # A KR's latest measurements by the time they were fetched (its history page).
        sa.Index(None, "kr_id", "measured_at"),
        # Successful history per KR on the time axis the values describe (as_of), which
        # is what trends and forecasts need, backfills included.
        sa.Index(None, "kr_id", "outcome", "as_of"),
        sa.Index(None, "run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kr_id: Mapped[int] = mapped_column(sa.ForeignKey("key_results.id"))
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    measured_at: Mapped[datetime]
    as_of: Mapped[datetime]
    value: Mapped[Decimal | None]
    outcome: Mapped[str] = mapped_column(sa.String(16))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    error_kind: Mapped[str | None] = mapped_column(sa.String(64))
    # A server default, not a Python one: rows written before check-ins existed are
    # measured, and code that does not name the column writes a measured row.
    kind: Mapped[str] = mapped_column(sa.String(16), server_default="measured")
    # Who entered a check-in, and why; null for measured values.
    author: Mapped[str | None] = mapped_column(sa.String(AUTHOR_LENGTH))
    note: Mapped[str | None] = mapped_column(sa.Text)


class Evaluation(Base):
    """How one KR stood as of one time: progress, score, forecast and status.

    ``evaluated_at`` is the as-of the evaluation describes (one per KR and as-of, like
    measurements); it only ever uses the history at or before that time.
    """

    __tablename__ = "evaluations"
    __table_args__ = (
        # One evaluation per KR and as-of; also "latest evaluation of each KR": one seek.
        sa.UniqueConstraint("kr_id", "evaluated_at"),
        sa.CheckConstraint(_in("status", STATUSES), name="status"),
        sa.Index(None, "run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kr_id: Mapped[int] = mapped_column(sa.ForeignKey("key_results.id"))
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    evaluated_at: Mapped[datetime]
    value: Mapped[Decimal | None]
    progress: Mapped[float | None] = mapped_column(sa.Double)
    score: Mapped[float | None] = mapped_column(sa.Double)
    expected_progress: Mapped[float | None] = mapped_column(sa.Double)
    forecast_value: Mapped[Decimal | None]
    forecast_score: Mapped[float | None] = mapped_column(sa.Double)
    status: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    # The forecast's uncertainty band at cycle end (None without a forecast).
    forecast_low: Mapped[Decimal | None]
    forecast_high: Mapped[Decimal | None]


class SupersededMeasurement(Base):
    """A measurement replaced by a later one of the same KR and as-of, kept for audit.

    Nothing reads these as history: they only answer "what did the source say before".
    """

    __tablename__ = "superseded_measurements"
    __table_args__ = (sa.Index(None, "kr_id", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The id the row had in ``measurements`` (ids are never reused there).
    measurement_id: Mapped[int]
    kr_id: Mapped[int] = mapped_column(sa.ForeignKey("key_results.id"))
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id"))
    measured_at: Mapped[datetime]
    as_of: Mapped[datetime]
    value: Mapped[Decimal | None]
    outcome: Mapped[str] = mapped_column(sa.String(16))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    error_kind: Mapped[str | None] = mapped_column(sa.String(64))
    # A server default, not a Python one: rows written before check-ins existed are
    # measured, and code that does not name the column writes a measured row.
    kind: Mapped[str] = mapped_column(sa.String(16), server_default="measured")
    # Who entered a check-in, and why; null for measured values.
    author: Mapped[str | None] = mapped_column(sa.String(AUTHOR_LENGTH))
    note: Mapped[str | None] = mapped_column(sa.Text)
    superseded_at: Mapped[datetime]
    # The run whose measurement replaced it (null when replaced outside a run).
    superseded_by_run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))


class KrNote(Base):
    """A note on a KR at an as-of of its cycle ("campaign paused this week"), by its author.

    Any KR takes notes, measured or manual; a note changes no value and no status.
    """

    __tablename__ = "kr_notes"
    __table_args__ = (sa.Index(None, "kr_id", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kr_id: Mapped[int] = mapped_column(sa.ForeignKey("key_results.id"))
    # The time the note is about (placed on the KR's chart), not when it was written.
    as_of: Mapped[datetime]
    created_at: Mapped[datetime]
    author: Mapped[str] = mapped_column(sa.String(AUTHOR_LENGTH))
    text: Mapped[str] = mapped_column(sa.Text)


class AlertState(Base):
    """A pending or firing alert of one KR; no row for a (KR, kind) means normal."""

    __tablename__ = "alert_states"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        sa.CheckConstraint(_in("phase", ALERT_PHASES), name="phase"),
    )

    kr_id: Mapped[int] = mapped_column(sa.ForeignKey("key_results.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    phase: Mapped[str] = mapped_column(sa.String(16))
    active_count: Mapped[int]
    active_since: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]


class Alert(Base):
    """One notification of one alert in one run: sent, silenced, inhibited, failed or recorded."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        sa.CheckConstraint(_in("transition", TRANSITIONS), name="transition"),
        sa.CheckConstraint(_in("delivery", DELIVERIES), name="delivery"),
        # `okr alerts`: the newest first, overall and per KR.
        sa.Index(None, "created_at"),
        sa.Index(None, "kr_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Null for alerts recorded outside a run (e.g. a test notification).
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id"))
    kr_id: Mapped[int] = mapped_column(sa.ForeignKey("key_results.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    transition: Mapped[str] = mapped_column(sa.String(16))
    route: Mapped[str] = mapped_column(sa.String(200))
    # Redacted (scheme and host only); "" when nothing was sent.
    channel: Mapped[str] = mapped_column(sa.Text)
    delivery: Mapped[str] = mapped_column(sa.String(16))
    payload: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]


class Silence(Base):
    """Alerts of a KR (``objective/kr``) or an objective are recorded, not sent, until ``until``."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(sa.String(401))
    until: Mapped[datetime]
    reason: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    # Set when removed by hand; removed silences are kept for the record.
    removed_at: Mapped[datetime | None]


class Meta(Base):
    """Small key/value facts about the store (e.g. ``definitions_fingerprint``)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)

"""One measurement and one evaluation per KR and as-of; run leases and ``crashed`` runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Written by hand to match ``okr_store/models.py``; the test suite compares the two.

Stores written before this revision may hold several measurements of a KR at one as-of
(a rerun with the same ``--as-of`` added a row instead of replacing it). The newest of
each group (highest id) stays current; the others move to ``superseded_measurements``,
kept for audit. Duplicate evaluations are derived data: all but the newest are dropped.
Then unique keys make sure no code path can add a second point again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# okr_store.types.ExactDecimal: exact NUMERIC on PostgreSQL, decimal text elsewhere.
DECIMAL = sa.String(80).with_variant(sa.Numeric(), "postgresql")
# okr_store.types.UtcDateTime.
TIMESTAMP = sa.DateTime(timezone=True)

OLD_RUN_STATUSES = "status IN ('running', 'completed', 'partial', 'failed')"
NEW_RUN_STATUSES = "status IN ('running', 'completed', 'partial', 'failed', 'crashed')"
MEASUREMENT_COLUMNS = "kr_id, run_id, measured_at, as_of, value, outcome, error_message, error_kind"


def upgrade() -> None:
    """Move duplicates aside, add the unique keys, the audit table and run leases."""
    op.create_table(
        "superseded_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("measurement_id", sa.Integer(), nullable=False),
        sa.Column("kr_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("measured_at", TIMESTAMP, nullable=False),
        sa.Column("as_of", TIMESTAMP, nullable=False),
        sa.Column("value", DECIMAL, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("superseded_at", TIMESTAMP, nullable=False),
        sa.Column("superseded_by_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["kr_id"], ["key_results.id"], name="fk_superseded_measurements_kr_id_key_results"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_superseded_measurements_run_id_runs"
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by_run_id"],
            ["runs.id"],
            name="fk_superseded_measurements_superseded_by_run_id_runs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_superseded_measurements"),
    )
    op.create_index(
        "ix_superseded_measurements_kr_id_as_of", "superseded_measurements", ["kr_id", "as_of"]
    )
    # Every row that is not the newest of its (kr_id, as_of) group.
    older = (
        "SELECT m.id FROM measurements m WHERE EXISTS (SELECT 1 FROM measurements n "
        "WHERE n.kr_id = m.kr_id AND n.as_of = m.as_of AND n.id > m.id)"
    )
    op.execute(
        sa.text(
            f"INSERT INTO superseded_measurements (measurement_id, {MEASUREMENT_COLUMNS}, "
            "superseded_at, superseded_by_run_id) "
            f"SELECT id, {MEASUREMENT_COLUMNS}, measured_at, NULL FROM measurements "
            f"WHERE id IN ({older})"
        )
    )
    op.execute(sa.text(f"DELETE FROM measurements WHERE id IN ({older})"))
    op.execute(
        sa.text(
            "DELETE FROM evaluations WHERE id IN (SELECT e.id FROM evaluations e WHERE EXISTS "
            "(SELECT 1 FROM evaluations f WHERE f.kr_id = e.kr_id "
            "AND f.evaluated_at = e.evaluated_at AND f.id > e.id))"
        )
    )
    with op.batch_alter_table("measurements") as batch:
        batch.create_unique_constraint("uq_measurements_kr_id_as_of", ["kr_id", "as_of"])
    op.drop_index("ix_evaluations_kr_id_evaluated_at", table_name="evaluations")
    with op.batch_alter_table("evaluations") as batch:
        batch.create_unique_constraint(
            "uq_evaluations_kr_id_evaluated_at", ["kr_id", "evaluated_at"]
        )
    _alter_runs(NEW_RUN_STATUSES, add_lease=True)


def downgrade() -> None:
    """Drop the unique keys, the audit table and run leases (crashed runs become failed)."""
    op.execute(sa.text("UPDATE runs SET status = 'failed' WHERE status = 'crashed'"))
    _alter_runs(OLD_RUN_STATUSES, add_lease=False)
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_constraint("uq_evaluations_kr_id_evaluated_at", type_="unique")
    op.create_index("ix_evaluations_kr_id_evaluated_at", "evaluations", ["kr_id", "evaluated_at"])
    with op.batch_alter_table("measurements") as batch:
        batch.drop_constraint("uq_measurements_kr_id_as_of", type_="unique")
    op.drop_index("ix_superseded_measurements_kr_id_as_of", table_name="superseded_measurements")
    op.drop_table("superseded_measurements")


def _alter_runs(statuses: str, *, add_lease: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        # 0001 created the check as "ck_runs_ck_runs_status" (the naming convention wrapped
        # the name it was given); from here on it is "ck_runs_status" everywhere.
        for name in ("ck_runs_ck_runs_status", "ck_runs_status"):
            op.execute(sa.text(f"ALTER TABLE runs DROP CONSTRAINT IF EXISTS {name}"))
        op.create_check_constraint(op.f("ck_runs_status"), "runs", sa.text(statuses))
        if add_lease:
            op.add_column("runs", sa.Column("lease_until", TIMESTAMP, nullable=True))
        else:
            op.drop_column("runs", "lease_until")
        return
    # SQLite cannot alter a CHECK constraint: the table is rebuilt from its definition
    # (okr_store.db.migrate turns foreign keys off while it does).
    with op.batch_alter_table(
        "runs", copy_from=_runs_table(not add_lease), recreate="always"
    ) as batch:
        batch.drop_constraint(op.f("ck_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_runs_status"), sa.text(statuses))
        if add_lease:
            batch.add_column(sa.Column("lease_until", TIMESTAMP, nullable=True))
        else:
            batch.drop_column("lease_until")


def _runs_table(with_lease: bool) -> sa.Table:
    """The runs table as it stands before the change (SQLite rebuilds it from this)."""
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("as_of", TIMESTAMP, nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("no_data", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    ]
    if with_lease:
        columns.append(sa.Column("lease_until", TIMESTAMP, nullable=True))
    return sa.Table(
        "runs",
        sa.MetaData(),
        *columns,
        sa.CheckConstraint(
            sa.text(NEW_RUN_STATUSES if with_lease else OLD_RUN_STATUSES), name="ck_runs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.Index("ix_runs_started_at", "started_at"),
    )

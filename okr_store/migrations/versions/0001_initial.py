"""Initial schema: cycles, objectives, key results, runs, measurements, evaluations, meta.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to match ``okr_store/models.py``; the test suite compares the two.
Column types are spelled with plain SQLAlchemy types (not the model's TypeDecorators) so
this file keeps describing the same schema if the Python-side types evolve.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# okr_store.types.ExactDecimal: exact NUMERIC on PostgreSQL, decimal text elsewhere.
DECIMAL = sa.String(80).with_variant(sa.Numeric(), "postgresql")
# okr_store.types.UtcDateTime.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("start_at", TIMESTAMP, nullable=False),
        sa.Column("end_at", TIMESTAMP, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cycles"),
        sa.UniqueConstraint("name", name="uq_cycles_name"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "runs",
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
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'partial', 'failed')", name="ck_runs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "objectives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("parent_key", sa.String(200), nullable=True),
        sa.Column("success_level", sa.Double(), nullable=True),
        sa.Column("archived_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("type IN ('aspirational', 'committed')", name="ck_objectives_type"),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycles.id"], name="fk_objectives_cycle_id_cycles"),
        sa.PrimaryKeyConstraint("id", name="pk_objectives"),
        sa.UniqueConstraint("cycle_id", "key", name="uq_objectives_cycle_id_key"),
    )
    op.create_table(
        "key_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("objective_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("baseline", DECIMAL, nullable=True),
        sa.Column("baseline_auto", sa.Boolean(), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("target_value", DECIMAL, nullable=True),
        sa.Column("floor", DECIMAL, nullable=True),
        sa.Column("weight", DECIMAL, nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("source_json", sa.JSON(), nullable=False),
        sa.Column("source_type", sa.String(64), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("archived_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["objective_id"], ["objectives.id"], name="fk_key_results_objective_id_objectives"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_key_results"),
        sa.UniqueConstraint("objective_id", "key", name="uq_key_results_objective_id_key"),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kr_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", TIMESTAMP, nullable=False),
        sa.Column("value", DECIMAL, nullable=True),
        sa.Column("progress", sa.Double(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("expected_progress", sa.Double(), nullable=True),
        sa.Column("forecast_value", DECIMAL, nullable=True),
        sa.Column("forecast_score", sa.Double(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('on_track', 'at_risk', 'off_track', 'no_data', 'error', 'stale')",
            name="ck_evaluations_status",
        ),
        sa.ForeignKeyConstraint(
            ["kr_id"], ["key_results.id"], name="fk_evaluations_kr_id_key_results"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_evaluations_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
    )
    op.create_index("ix_evaluations_kr_id_evaluated_at", "evaluations", ["kr_id", "evaluated_at"])
    op.create_index("ix_evaluations_run_id", "evaluations", ["run_id"])
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kr_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("measured_at", TIMESTAMP, nullable=False),
        sa.Column("as_of", TIMESTAMP, nullable=False),
        sa.Column("value", DECIMAL, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.CheckConstraint("outcome IN ('ok', 'no_data', 'error')", name="ck_measurements_outcome"),
        sa.CheckConstraint(
            "(outcome = 'ok' AND value IS NOT NULL) OR (outcome <> 'ok' AND value IS NULL)",
            name="ck_measurements_value_iff_ok",
        ),
        sa.ForeignKeyConstraint(
            ["kr_id"], ["key_results.id"], name="fk_measurements_kr_id_key_results"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_measurements_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_measurements"),
    )
    op.create_index("ix_measurements_kr_id_measured_at", "measurements", ["kr_id", "measured_at"])
    op.create_index(
        "ix_measurements_kr_id_outcome_measured_at",
        "measurements",
        ["kr_id", "outcome", "measured_at"],
    )
    op.create_index(
        "ix_measurements_kr_id_outcome_as_of", "measurements", ["kr_id", "outcome", "as_of"]
    )
    op.create_index("ix_measurements_run_id", "measurements", ["run_id"])


def downgrade() -> None:
    """Drop everything (history included)."""
    for index, table in (
        ("ix_measurements_run_id", "measurements"),
        ("ix_measurements_kr_id_outcome_as_of", "measurements"),
        ("ix_measurements_kr_id_outcome_measured_at", "measurements"),
        ("ix_measurements_kr_id_measured_at", "measurements"),
        ("ix_evaluations_run_id", "evaluations"),
        ("ix_evaluations_kr_id_evaluated_at", "evaluations"),
        ("ix_runs_started_at", "runs"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("measurements", "evaluations", "key_results", "objectives", "runs", "meta"):
        op.drop_table(table)
    op.drop_table("cycles")

"""Alerting: forecast band, KR alert policies, alert states, alert records, silences.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Written by hand to match ``okr_store/models.py``; the test suite compares the two. Existing
rows are kept: the new columns are nullable and the new tables start empty.

The stored definitions fingerprint is cleared so that the next run synchronises the OKR
files again (instead of skipping an unchanged set) and fills ``key_results.alert_policy``
from their ``alerts:`` keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# okr_store.types.ExactDecimal: exact NUMERIC on PostgreSQL, decimal text elsewhere.
DECIMAL = sa.String(80).with_variant(sa.Numeric(), "postgresql")
# okr_store.types.UtcDateTime.
TIMESTAMP = sa.DateTime(timezone=True)

ALERT_KINDS = "kind IN ('off_track', 'source_failing', 'stale')"


def upgrade() -> None:
    """Add the columns and tables of alerting."""
    # Batch mode: SQLite cannot ALTER most things; adding nullable columns stays an
    # in-place ALTER TABLE there (no table rebuild), elsewhere batch ops run directly.
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("forecast_low", DECIMAL, nullable=True))
        batch.add_column(sa.Column("forecast_high", DECIMAL, nullable=True))
    with op.batch_alter_table("key_results") as batch:
        batch.add_column(sa.Column("alert_policy", sa.JSON(), nullable=True))
    op.create_table(
        "alert_states",
        sa.Column("kr_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("active_count", sa.Integer(), nullable=False),
        sa.Column("active_since", TIMESTAMP, nullable=False),
        sa.Column("fired_at", TIMESTAMP, nullable=True),
        sa.Column("last_sent_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(ALERT_KINDS, name="ck_alert_states_kind"),
        sa.CheckConstraint("phase IN ('pending', 'firing')", name="ck_alert_states_phase"),
        sa.ForeignKeyConstraint(
            ["kr_id"], ["key_results.id"], name="fk_alert_states_kr_id_key_results"
        ),
        sa.PrimaryKeyConstraint("kr_id", "kind", name="pk_alert_states"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("kr_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(ALERT_KINDS, name="ck_alerts_kind"),
        sa.CheckConstraint(
            "transition IN ('firing', 'repeat', 'resolved')", name="ck_alerts_transition"
        ),
        sa.CheckConstraint(
            "delivery IN ('sent', 'silenced', 'inhibited', 'failed', 'dry_run')",
            name="ck_alerts_delivery",
        ),
        sa.ForeignKeyConstraint(["kr_id"], ["key_results.id"], name="fk_alerts_kr_id_key_results"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_alerts_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_created_at", "alerts", ["created_at"])
    op.create_index("ix_alerts_kr_id_created_at", "alerts", ["kr_id", "created_at"])
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(401), nullable=False),
        sa.Column("until", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("removed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )
    op.execute(sa.text("DELETE FROM meta WHERE key = 'definitions_fingerprint'"))


def downgrade() -> None:
    """Drop the alerting tables and columns (alert history included)."""
    op.drop_index("ix_alerts_kr_id_created_at", table_name="alerts")
    op.drop_index("ix_alerts_created_at", table_name="alerts")
    for table in ("silences", "alerts", "alert_states"):
        op.drop_table(table)
    with op.batch_alter_table("key_results") as batch:
        batch.drop_column("alert_policy")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("forecast_high")
        batch.drop_column("forecast_low")

"""The ``recorded`` delivery: alerts whose route has no channel are no longer ``failed``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Written by hand to match ``okr_store/models.py``; the test suite compares the two.

Until now an alert that no channel could take (no ``alerts.yaml``, or a route written
without channels) was stored ``failed`` with the error ``recorded, not sent: route '<name>'
has no channel``. Those rows become ``recorded`` and their error is cleared: the delivery
now says what the error said, and an error shown beside ``recorded`` would read as a
failure. Nothing is lost: the text named only the route, which the row keeps in its own
column, so the downgrade writes the same text back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# okr_store.types.UtcDateTime.
TIMESTAMP = sa.DateTime(timezone=True)

OLD_DELIVERIES = "delivery IN ('sent', 'silenced', 'inhibited', 'failed', 'dry_run')"
NEW_DELIVERIES = "delivery IN ('sent', 'silenced', 'inhibited', 'failed', 'recorded', 'dry_run')"
#: notify.send.NOT_ROUTED, the start of the error these rows were stored with.
NOT_ROUTED = "recorded, not sent"


def upgrade() -> None:
    """Allow ``recorded`` and turn the unrouted ``failed`` rows into it (error cleared)."""
    _alter_delivery_check(NEW_DELIVERIES)
    op.execute(
        sa.text(
            "UPDATE alerts SET delivery = 'recorded', error = NULL "
            "WHERE delivery = 'failed' AND channel = '' AND error LIKE :prefix"
        ).bindparams(prefix=f"{NOT_ROUTED}%")
    )


def downgrade() -> None:
    """Turn ``recorded`` rows back into ``failed`` with the error 0004-era code wrote."""
    op.execute(
        sa.text(
            "UPDATE alerts SET delivery = 'failed', "
            "error = :prefix || ': route ''' || route || ''' has no channel' "
            "WHERE delivery = 'recorded'"
        ).bindparams(prefix=NOT_ROUTED)
    )
    _alter_delivery_check(OLD_DELIVERIES)


def _alter_delivery_check(deliveries: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        # 0002 created the check as "ck_alerts_ck_alerts_delivery" (the naming convention
        # wrapped the name it was given); from here on it is "ck_alerts_delivery".
        for name in ("ck_alerts_ck_alerts_delivery", "ck_alerts_delivery"):
            op.execute(sa.text(f"ALTER TABLE alerts DROP CONSTRAINT IF EXISTS {name}"))
        op.create_check_constraint(op.f("ck_alerts_delivery"), "alerts", sa.text(deliveries))
        return
    # SQLite cannot alter a CHECK constraint: the table is rebuilt from its definition
    # (okr_store.db.migrate turns foreign keys off while it does).
    old = NEW_DELIVERIES if deliveries == OLD_DELIVERIES else OLD_DELIVERIES
    with op.batch_alter_table("alerts", copy_from=_alerts_table(old), recreate="always") as batch:
        batch.drop_constraint(op.f("ck_alerts_delivery"), type_="check")
        batch.create_check_constraint(op.f("ck_alerts_delivery"), sa.text(deliveries))


def _alerts_table(deliveries: str) -> sa.Table:
    """The alerts table as it stands before the change (SQLite rebuilds it from this)."""
    return sa.Table(
        "alerts",
        sa.MetaData(),
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
        sa.CheckConstraint(
            sa.text("kind IN ('off_track', 'source_failing', 'stale')"), name="ck_alerts_kind"
        ),
        sa.CheckConstraint(
            sa.text("transition IN ('firing', 'repeat', 'resolved')"),
            name="ck_alerts_transition",
        ),
        sa.CheckConstraint(sa.text(deliveries), name="ck_alerts_delivery"),
        sa.ForeignKeyConstraint(["kr_id"], ["key_results.id"], name="fk_alerts_kr_id_key_results"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_alerts_run_id_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.Index("ix_alerts_created_at", "created_at"),
        sa.Index("ix_alerts_kr_id_created_at", "kr_id", "created_at"),
    )

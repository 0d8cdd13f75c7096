"""One index less on ``measurements``: ``(kr_id, outcome, measured_at)``, which nothing reads.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Written by hand to match ``okr_store/models.py``; the test suite compares the two.

The index served "the last successful value by the time it was fetched", which the store
once read for staleness. Every such read now goes by ``as_of`` (the time a value
describes: ``(kr_id, outcome, as_of)``), and the index was left to be kept up to date by
every measurement written, one of six a row goes into, read by no query (PostgreSQL's
``pg_stat_user_indexes`` counted no scan of it over runs, the status, history and the
dashboard). No data is in an index: the upgrade and the downgrade lose nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_measurements_kr_id_outcome_measured_at"


def upgrade() -> None:
    """Drop the index nothing reads."""
    op.drop_index(INDEX, table_name="measurements")


def downgrade() -> None:
    """Create it again."""
    op.create_index(INDEX, "measurements", ["kr_id", "outcome", "measured_at"])

"""Check-ins and notes: measurement kinds with author and note, ``kr_notes``, run triggers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Written by hand to match ``okr_store/models.py``; the test suite compares the two.

Every row is kept: the measurements stored so far were all fetched from a source, so the
new ``kind`` column takes ``measured`` (a server default) and ``author``/``note`` stay
null; runs so far become ``run``s. ``kr_notes`` starts empty. On SQLite the columns are
added in place (``ALTER TABLE ... ADD COLUMN``, with the CHECK as a column constraint), so a
large store is not copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# okr_store.types.UtcDateTime.
TIMESTAMP = sa.DateTime(timezone=True)

KINDS = "kind IN ('measured', 'checkin')"
MEASUREMENT_TABLES = ("measurements", "superseded_measurements")


def upgrade() -> None:
    """Add the kind, author and note of measurements, run triggers, and ``kr_notes``."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in MEASUREMENT_TABLES:
        checked = table == "measurements"
        if sqlite:
            # SQLite cannot add a table CHECK without rebuilding the table; a named column
            # constraint added with the column checks the same thing.
            check = f" CONSTRAINT ck_measurements_kind CHECK ({KINDS})" if checked else ""
            op.execute(
                sa.text(
                    f"ALTER TABLE {table} ADD COLUMN kind VARCHAR(16) "
                    f"DEFAULT 'measured' NOT NULL{check}"
                )
            )
        else:
            op.add_column(
                table,
                sa.Column("kind", sa.String(16), server_default="measured", nullable=False),
            )
            if checked:
                op.create_check_constraint(op.f("ck_measurements_kind"), table, sa.text(KINDS))
        op.add_column(table, sa.Column("author", sa.String(200), nullable=True))
        op.add_column(table, sa.Column("note", sa.Text(), nullable=True))
    op.add_column("runs", sa.Column("trigger", sa.String(16), server_default="run", nullable=False))
    op.create_table(
        "kr_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kr_id", sa.Integer(), nullable=False),
        sa.Column("as_of", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["kr_id"], ["key_results.id"], name="fk_kr_notes_kr_id_key_results"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_kr_notes"),
    )
    op.create_index("ix_kr_notes_kr_id_as_of", "kr_notes", ["kr_id", "as_of"])


def downgrade() -> None:
    """Drop notes, triggers and the kinds (check-ins stay, as plain measurements)."""
    op.drop_index("ix_kr_notes_kr_id_as_of", table_name="kr_notes")
    op.drop_table("kr_notes")
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("runs",):
        _drop_column(table, "trigger", sqlite)
    for table in MEASUREMENT_TABLES:
        if table == "measurements" and not sqlite:
            op.drop_constraint(op.f("ck_measurements_kind"), table, type_="check")
        for column in ("note", "author", "kind"):
            _drop_column(table, column, sqlite)


def _drop_column(table: str, column: str, sqlite: bool) -> None:
    if sqlite:
        # In place (SQLite 3.35+): a column whose only CHECK is its own can be dropped
        # without the table rebuild batch mode would do.
        op.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    else:
        op.drop_column(table, column)

"""Engine setup and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from okr_pipeline.okr_store.db import current_revision, head_revision, make_engine, upgrade
from okr_pipeline.okr_store.models import Base

TABLES = {
    "cycles", "objectives", "key_results", "runs", "measurements", "evaluations", "meta",
    "alert_states", "alerts", "silences",
}  # fmt: skip


def test_upgrade_from_empty_creates_every_table(engine: sa.Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision() == "0006"
    assert set(sa.inspect(engine).get_table_names()) >= TABLES


def test_upgrade_is_idempotent(engine: sa.Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('probe', 'kept')"))
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        probe = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'probe'")).scalar()
    assert probe == "kept"


def test_concurrent_upgrades_do_not_collide(db_url: str) -> None:
    # Several workers starting at once each migrate; the lock must serialise them.
    engines = [make_engine(db_url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def migrate(engine: sa.Engine) -> None:
        try:
            barrier.wait()
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            engine.dispose()


def test_models_and_migrations_agree(engine: sa.Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_compare_detects_a_difference(engine: sa.Engine) -> None:
    # Proves the comparison above can fail: a column the models lack must show up.
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE runs ADD COLUMN extra VARCHAR(10)"))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d[0] for d in diff] == ["remove_column"]


def test_sqlite_engine_creates_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "okr.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_sqlite_ddl_is_transactional(tmp_path: Path) -> None:
    # Alembic relies on it: a failed migration must leave nothing half-created.
    engine = make_engine(f"sqlite:///{tmp_path / 'okr.db'}")
    try:
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("THIS IS NOT SQL")
        assert "t" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_engine_pings(postgres_url: str) -> None:
    engine = make_engine(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping
    finally:
        engine.dispose()

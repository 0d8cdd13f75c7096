"""Connections and secrets from Prefect blocks: read by the flow, never stored or shown."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from okr_pipeline.flows.blocks import block_reference, resolve_blocks, uses_blocks
from okr_pipeline.flows.update import update_key_results
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import load_settings
from okr_pipeline.run.record import open_store
from okr_pipeline.run.update import RunRequest, run_update
from tests.cli.test_source_test import TOKEN, api_url, write_project, write_warehouse

__all__ = ["api_url"]  # the fixture, imported to be used here

pytestmark = pytest.mark.usefixtures("prefect_harness")

WAREHOUSE_PASSWORD = "pw-block-8e1d0c2b7a-SECRET"

SEVEN_DAYS = tuple(f"2026-10-{day:02}" for day in range(1, 8))


@pytest.fixture
def names() -> dict[str, str]:
    """Block names of this test: the Prefect server is shared by the session."""
    suffix = uuid.uuid4().hex[:8]
    return {"secret": f"token-{suffix}", "warehouse": f"warehouse-{suffix}"}


def _save_secret(name: str, value: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(name, overwrite=True)


def _stored_text(project: Path) -> str:
    """Every row of every table of the project's store, as text."""
    engine = sa.create_engine(load_settings(project).resolved_store_url())
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            rows = [repr(conn.execute(sa.text(f"SELECT * FROM {t}")).all()) for t in tables]
    finally:
        engine.dispose()
    return "\n".join(rows)


def _values(project: Path) -> dict[str, Decimal | None]:
    store = open_store(load_settings(project))
    try:
        return {row.ref: row.value for row in store.latest_status()}
    finally:
        store.close()


def test_flow_reads_a_secret_block_and_a_secret_url(
    tmp_path: Path,
    api_url: str,
    names: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_warehouse(f"sqlite:///{tmp_path / 'wh.db'}", SEVEN_DAYS)
    _save_secret(names["secret"], TOKEN)
    # A connection URL may sit in a Secret block too (here: the warehouse's).
    _save_secret(names["warehouse"], f"sqlite:///{tmp_path / 'wh.db'}")
    for name in [n for n in os.environ if n.startswith("OKR_")]:
        monkeypatch.delenv(name)
    project = write_project(
        tmp_path,
        f"OKR_CONNECTIONS__WAREHOUSE__URL=prefect-block://secret/{names['warehouse']}\n"
        f"OKR_CONNECTIONS__API__URL={api_url}\n"
        f"OKR_SECRETS__TOKEN=prefect-block://secret/{names['secret']}\n",
    )
    caplog.set_level(logging.DEBUG)
    summary = update_key_results(project_dir=str(project), all_krs=True)
    assert summary.errors == 0, summary.failed
    assert _values(project) == {"growth/signups": Decimal(7), "growth/api": Decimal(99)}
    stored = _stored_text(project)
    assert TOKEN not in stored and "prefect-block://" not in stored
    assert TOKEN not in caplog.text


def test_flow_reads_a_sqlalchemy_connector_block(
    tmp_path: Path,
    api_url: str,
    names: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
) -> None:
    prefect_sqlalchemy = pytest.importorskip("prefect_sqlalchemy")
    admin = sa.make_url(postgres_url)
    write_warehouse(postgres_url, SEVEN_DAYS)
    engine = sa.create_engine(admin)
    role = f"okr_block_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{WAREHOUSE_PASSWORD}'"))
        conn.execute(sa.text(f"GRANT SELECT ON signups TO {role}"))
    try:
        connector = prefect_sqlalchemy.SqlAlchemyConnector(
            connection_info=prefect_sqlalchemy.ConnectionComponents(
                driver="postgresql+psycopg",
                username=role,
                password=WAREHOUSE_PASSWORD,
                host=admin.host,
                port=admin.port,
                database=admin.database,
            )
        )
        connector.save(names["warehouse"], overwrite=True)
        _save_secret(names["secret"], TOKEN)
        for name in [n for n in os.environ if n.startswith("OKR_")]:
            monkeypatch.delenv(name)
        project = write_project(
            tmp_path,
            "OKR_CONNECTIONS__WAREHOUSE__URL="
            f"prefect-block://sqlalchemy-connector/{names['warehouse']}\n"
            f"OKR_CONNECTIONS__API__URL={api_url}\n"
            f"OKR_SECRETS__TOKEN=prefect-block://secret/{names['secret']}\n",
        )
        summary = update_key_results(project_dir=str(project), all_krs=True)
        assert summary.errors == 0, summary.failed
        assert _values(project) == {"growth/signups": Decimal(7), "growth/api": Decimal(99)}
        stored = _stored_text(project)
        assert WAREHOUSE_PASSWORD not in stored and TOKEN not in stored
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE signups"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        engine.dispose()


def test_a_missing_block_is_a_clear_error(
    tmp_path: Path, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OKR_SECRETS__TOKEN", f"prefect-block://secret/{names['secret']}")
    settings = load_settings(tmp_path)
    with pytest.raises(ConfigError, match=f"no Prefect block 'secret/{names['secret']}'"):
        resolve_blocks(settings)


def test_a_wrong_block_type_for_a_secret_is_refused(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path, secrets={"token": SecretStr("prefect-block://sqlalchemy-connector/wh")}
    )
    with pytest.raises(ConfigError, match="OKR_SECRETS__TOKEN: a secret comes from a 'secret'"):
        resolve_blocks(settings)


@pytest.mark.parametrize(
    "value",
    [
        "prefect-block://",
        "prefect-block://secret",
        "prefect-block://s3/x",
        "prefect-block://secret/a/b",
    ],
)
def test_malformed_references_name_the_setting_and_the_valid_forms(value: str) -> None:
    with pytest.raises(ConfigError, match=r"OKR_SECRETS__X: .* valid: prefect-block://sqlalchemy"):
        block_reference(value, "OKR_SECRETS__X")


def test_plain_values_are_not_references(tmp_path: Path) -> None:
    assert block_reference("sqlite:///x.db", "OKR_CONNECTIONS__WH__URL") is None
    settings = load_settings(tmp_path, secrets={"t": SecretStr("plain")})
    assert not uses_blocks(settings)
    assert resolve_blocks(settings) is settings


def test_a_run_without_prefect_refuses_block_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("OKR_")]:
        monkeypatch.delenv(name)
    project = write_project(
        tmp_path,
        "OKR_CONNECTIONS__WAREHOUSE__URL=prefect-block://sqlalchemy-connector/wh\n"
        "OKR_CONNECTIONS__API__URL=http://127.0.0.1:9\nOKR_SECRETS__TOKEN=x\n",
    )
    with pytest.raises(ConfigError) as caught:
        run_update(RunRequest(project_dir=project, all_krs=True))
    assert str(caught.value) == (
        "prefect-block:// connections need a run on Prefect (a configured PREFECT_API_URL, "
        "or okr run --prefect): "
        "OKR_CONNECTIONS__WAREHOUSE__URL"
    )


def test_source_test_reads_the_blocks_a_kr_uses(
    tmp_path: Path, api_url: str, names: dict[str, str]
) -> None:
    from prefect.settings import PREFECT_API_URL

    write_warehouse(f"sqlite:///{tmp_path / 'wh.db'}", SEVEN_DAYS)
    _save_secret(names["secret"], TOKEN)
    project = write_project(
        tmp_path,
        f"OKR_CONNECTIONS__WAREHOUSE__URL=sqlite:///{tmp_path / 'wh.db'}\n"
        f"OKR_CONNECTIONS__API__URL={api_url}\n"
        f"OKR_SECRETS__TOKEN=prefect-block://secret/{names['secret']}\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_", "PREFECT_"))}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    result = subprocess.run(
        [sys.executable, "-m", "okr_pipeline", "source", "test", "--all"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ growth/api: 99 (" in result.stdout
    assert "✓ growth/signups: 7 (" in result.stdout
    assert TOKEN not in result.stdout + result.stderr

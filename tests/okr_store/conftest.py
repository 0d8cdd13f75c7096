"""Fixtures of the store tests: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_core.definitions import OkrFileDef
from okr_pipeline.okr_core.loader import LoadedFile, OkrSet
from okr_pipeline.okr_store.db import make_engine, upgrade
from okr_pipeline.okr_store.store import Store


@pytest.fixture(autouse=True)
def _sqlalchemy_warnings_are_errors() -> Iterator[None]:
    # E.g. "Dialect sqlite+pysqlite does *not* support Decimal objects natively": the store
    # must never trigger it, nor any other SQLAlchemy warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", sa.exc.SAWarning)
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once per backend."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> Store:
    upgrade(engine)
    return Store(engine)


def kr(key: str, **overrides: Any) -> dict[str, Any]:
    """A KR definition as it would be written in YAML."""
    data: dict[str, Any] = {
        "id": key,
        "title": f"KR {key}",
        "baseline": 100,
        "target": 150,
        "source": {"type": "sql", "connection": "warehouse", "query": f"SELECT {len(key)}"},
    }
    data.update(overrides)
    return data


def objective(key: str, krs: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """An objective definition as it would be written in YAML."""
    data: dict[str, Any] = {"id": key, "title": f"Objective {key}", "owner": f"{key}@example.com"}
    data.update(overrides)
    data["key_results"] = krs
    return data


CYCLE = {"name": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31", "timezone": "Europe/Berlin"}


def okr_set(
    objectives: list[dict[str, Any]], fingerprint: str = "fp-1", cycle: dict[str, Any] = CYCLE
) -> OkrSet:
    """An OkrSet of one file, built through the okr_core models."""
    definition = OkrFileDef.model_validate({"cycle": cycle, "objectives": objectives})
    return OkrSet(files=[LoadedFile(Path("okrs/q4.yaml"), definition)], fingerprint=fingerprint)

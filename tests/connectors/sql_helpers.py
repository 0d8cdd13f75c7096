"""Helpers of the SQL source tests: configs that skip validation, the guard turned off."""

from __future__ import annotations

from typing import Any

import pytest

from okr_pipeline.connectors import sql_guard
from okr_pipeline.connectors.sql import SqlSourceConfig


def unchecked(query: str, **fields: Any) -> SqlSourceConfig:
    """A config built without validation, as a plugin or an old stored row could hand over."""
    values: dict[str, Any] = {"column": None, "timeout_seconds": None} | fields
    return SqlSourceConfig.model_construct(type="sql", connection="wh", query=query, **values)


def guard_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the statement check off, to test what the database itself refuses or undoes."""
    monkeypatch.setattr(sql_guard, "check_query", lambda query: None)

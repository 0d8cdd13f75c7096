"""Flows whose parameters Prefect records without importing FastAPI.

Prefect stores a flow run's parameters as JSON, encoded with FastAPI's
``jsonable_encoder``; importing FastAPI for that took 0.07 to 0.2 s of every process that
starts a flow run (``okr run``, each worker's flow run, a shard), longer than the rest of
creating the flow run. okr's flows take plain data only (strings, numbers, booleans, None,
lists and mappings of them, datetimes), which encode the same way without it. A value of
another type is handed to Prefect's own encoding, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from prefect import Flow

__all__ = ["PlainParameterFlow", "plain_flow", "plain_json"]

P = ParamSpec("P")
R = TypeVar("R")


class NotPlain(TypeError):
    """A parameter value that only Prefect's own encoding knows how to write."""


def plain_json(value: Any) -> Any:
    """``value`` as ``jsonable_encoder`` writes it, for the plain types okr's flows take.

    Raises:
        NotPlain: ``value`` holds something else (a model, a dataclass, a set...).
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [plain_json(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: plain_json(item) for key, item in value.items()}
    raise NotPlain(type(value).__name__)


class PlainParameterFlow(Flow[P, R]):
    """A Prefect flow that encodes plain parameter values itself (see the module's doc)."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as JSON-ready values, as Prefect would store them."""
        try:
            return {key: plain_json(value) for key, value in parameters.items()}
        except NotPlain:
            return super().serialize_parameters(parameters)


def plain_flow(**options: Any) -> Callable[[Callable[P, R]], PlainParameterFlow[P, R]]:
    """Like ``@prefect.flow(**options)``, making a :class:`PlainParameterFlow`."""

    def decorate(fn: Callable[P, R]) -> PlainParameterFlow[P, R]:
        return PlainParameterFlow(fn, **options)

    return decorate

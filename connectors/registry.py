"""Source types by name, found through entry points (group ``okr.connectors``).

The data team's own package can add a connector by declaring, in its ``pyproject.toml``::

    [project.entry-points."okr.connectors"]
    ga4 = "acme_okr.ga4:Ga4Source"

Entry points are listed on first use and each class is imported only when asked for, then
cached, so ``okr validate`` on SQL-only files never imports the HTTP stack.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NamedTuple, get_args

from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceEnvironment
from okr_pipeline.connectors.errors import SourceConfigError
from okr_pipeline.okr_core.names import unknown_name_message

__all__ = [
    "ENTRY_POINT_GROUP",
    "SOURCE_TYPES",
    "SourceDescription",
    "check_references",
    "describe_sources",
    "get_source_class",
    "parse_source_config",
    "reset_cache",
    "source_types",
]

ENTRY_POINT_GROUP = "okr.connectors"


class SourceDescription(NamedTuple):
    """One row of ``okr connectors``."""

    type: str
    class_path: str
    distribution: str
    doc: str
    reads: str = ""
    authentication: str = ""
    tested_against: str = ""


class _SourceTypes(Mapping[str, type[BaseSource[Any]]]):
    """Lazy, cached, thread-safe mapping of source type name to source class."""

    def __init__(self, group: str) -> None:
        self._group = group
        self._lock = threading.Lock()
        self._entry_points: dict[str, EntryPoint] | None = None
        self._classes: dict[str, type[BaseSource[Any]]] = {}

    def _eps(self) -> dict[str, EntryPoint]:
        with self._lock:
            if self._entry_points is None:
                found: dict[str, EntryPoint] = {}
                for ep in entry_points(group=self._group):
                    other = found.get(ep.name)
                    # An editable install can list the same entry point twice; only two
                    # different targets for one name are a real conflict.
                    if other is not None and other.value != ep.value:
                        raise SourceConfigError(
                            f"Source type {ep.name!r} is registered twice in entry-point "
                            f"group {self._group!r}: {other.value} ({_dist(other)}) and "
                            f"{ep.value} ({_dist(ep)}). Uninstall one of them."
                        )
                    found[ep.name] = ep
                self._entry_points = found
            return self._entry_points

    def entry_point(self, name: str) -> EntryPoint:
        """The entry point of a type name (KeyError if unknown)."""
        return self._eps()[name]

    def __getitem__(self, name: str) -> type[BaseSource[Any]]:
        cached = self._classes.get(name)
        if cached is not None:
            return cached
        ep = self._eps()[name]
        cls = _load(ep)
        with self._lock:
            self._classes[name] = cls
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._eps()))

    def __len__(self) -> int:
        return len(self._eps())

    def __contains__(self, name: object) -> bool:
        return name in self._eps()

    def reset(self) -> None:
        """Forget what was found; the next access lists entry points again."""
        with self._lock:
            self._entry_points = None
            self._classes.clear()

    def __repr__(self) -> str:
        return f"SOURCE_TYPES(group={self._group!r})"


def _dist(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _load(ep: EntryPoint) -> type[BaseSource[Any]]:
    where = f"entry point {ep.name!r} = {ep.value!r} ({_dist(ep)}, group {ENTRY_POINT_GROUP!r})"
    try:
        obj = ep.load()
    except Exception as exc:  # any import failure of a plugin is reported
        raise SourceConfigError(
            f"Cannot load source type {ep.name!r}: {where} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, BaseSource)):
        raise SourceConfigError(
            f"Cannot use source type {ep.name!r}: {where} points to {obj!r}, which is not a "
            f"subclass of connectors.base.BaseSource. Point it at a BaseSource subclass."
        )
    model = getattr(obj, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseSourceConfig)):
        raise SourceConfigError(
            f"Cannot use source type {ep.name!r}: {obj.__module__}.{obj.__qualname__}."
            f"config_model must be a BaseSourceConfig subclass, got {model!r}."
        )
    declared = get_args(model.model_fields["type"].annotation)
    if getattr(obj, "type_name", None) != ep.name or declared != (ep.name,):
        raise SourceConfigError(
            f"Cannot use source type {ep.name!r}: {obj.__module__}.{obj.__qualname__} must "
            f"set type_name = {ep.name!r} and its config model type: Literal[{ep.name!r}] "
            f"(has type_name={getattr(obj, 'type_name', None)!r}, type Literal{list(declared)})."
        )
    return obj


SOURCE_TYPES = _SourceTypes(ENTRY_POINT_GROUP)
"""Every registered source type, by name; lazy and cached."""


def source_types() -> dict[str, type[BaseSource[Any]]]:
    """Load and return every registered source type.

    Returns:
        Source classes by type name, sorted by name.

    Raises:
        SourceConfigError: A registered entry point is broken or not a BaseSource.
    """
    return {name: SOURCE_TYPES[name] for name in SOURCE_TYPES}


def reset_cache() -> None:
    """Forget the registered types (for tests, or after installing a plugin at runtime)."""
    SOURCE_TYPES.reset()


def _valid_types_hint(received: str | None) -> str:
    names = list(SOURCE_TYPES)
    hint = f"Valid: {', '.join(names)}."
    if received:
        close = difflib.get_close_matches(received, names, n=1)
        if close:
            hint += f" Did you mean {close[0]!r}?"
    return hint


def get_source_class(type_name: str) -> type[BaseSource[Any]]:
    """The source class registered under ``type_name``.

    Args:
        type_name: The ``type`` of a source, e.g. ``"sql"``.

    Returns:
        The source class.

    Raises:
        SourceConfigError: No such type (the message lists the valid ones and suggests a
            close match), or its entry point is broken.
    """
    if type_name not in SOURCE_TYPES:
        raise SourceConfigError(
            f"Unknown source type {type_name!r}. {_valid_types_hint(type_name)}", loc=("type",)
        )
    return SOURCE_TYPES[type_name]


def parse_source_config(raw: Mapping[str, Any]) -> BaseSourceConfig:
    """Validate a ``source:`` mapping from an OKR file into its connector's config model.

    Args:
        raw: The mapping as written, e.g. ``{"type": "sql", "connection": "wh", ...}``.

    Returns:
        The validated config (an instance of the type's ``config_model``).

    Raises:
        SourceConfigError: ``raw`` is not a mapping, has no ``type``, or the type is
            unknown; ``.loc`` is ``("type",)`` where it applies.
        pydantic.ValidationError: A field is missing, unknown or invalid; each error's
            ``loc`` is relative to the source mapping.
    """
    if not isinstance(raw, Mapping):
        raise SourceConfigError(
            f"A source must be a mapping with a 'type' key, got {type(raw).__name__}. "
            f"{_valid_types_hint(None)}"
        )
    type_name = raw.get("type")
    if type_name is None:
        raise SourceConfigError(
            f"The source has no 'type'. {_valid_types_hint(None)}", loc=("type",)
        )
    if not isinstance(type_name, str):
        raise SourceConfigError(
            f"The source 'type' must be a string, got {type_name!r}. {_valid_types_hint(None)}",
            loc=("type",),
        )
    cls = get_source_class(type_name)
    return cls.config_model.model_validate(dict(raw))


def check_references(config: BaseSourceConfig, env: SourceEnvironment) -> None:
    """Check that every connection and secret a source names is defined in the settings.

    Args:
        config: A validated source config.
        env: The run's connections and secrets.

    Raises:
        SourceConfigError: Naming the first unknown connection or secret, the known names,
            and the environment variable that would define it.
    """
    for name in sorted(config.connection_names()):
        if name not in env.connections:
            raise SourceConfigError(
                unknown_name_message("connection", name, env.connections), loc=("connection",)
            )
    for name in sorted(config.secret_names()):
        if name not in env.secrets:
            raise SourceConfigError(unknown_name_message("secret", name, env.secrets))


def describe_sources() -> list[SourceDescription]:
    """One row per registered source type, for ``okr connectors``.

    A broken plugin does not hide the others: its row says why it cannot be used.

    Returns:
        Rows of (type, class path, distribution, first line of the class docstring, what
        it reads, its authentication, what it was tested against).
    """
    rows = []
    for name in SOURCE_TYPES:
        ep = SOURCE_TYPES.entry_point(name)
        path, dist = ep.value.replace(":", "."), _dist(ep)
        try:
            cls = SOURCE_TYPES[name]
        except SourceConfigError as exc:
            rows.append(SourceDescription(name, path, dist, f"unavailable: {exc}"))
            continue
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append(
            SourceDescription(
                name, path, dist, doc, cls.reads, cls.authentication, cls.tested_against
            )
        )
    return rows

"""Where alerts go: ``alerts.yaml``, its routes, and the policy defaults.

::

    report_url: https://okr.example.com/status     # optional: linked from every message
    defaults: {pending_evaluations: 2, repeat_interval: 3d}   # AlertPolicy fields
    routes:                                         # first match wins
      - name: podcasts
        owners: ["maya@example.com", "*@podcasts.example.com"]   # fnmatch globs
        channels: ["json://hooks.example.com/okr"]                # Apprise URLs
    default_route:
      channels: ["json://hooks.example.com/okr-catchall"]

Owners match case-insensitively (e-mail addresses are written in any case). Channels are
URLs with a scheme; they may hold ``${secret:NAME}`` references, checked here for syntax
only (:func:`secret_names` lists them, for the caller to check against the settings).
Every mistake is reported with the file, the line and where in the file, like the OKR
definitions (:mod:`okr_core.loader`), all at once in one :class:`RoutingError`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap

from okr_pipeline.okr_core._problems import Loc, format_loc, line_of, one_line
from okr_pipeline.okr_core._problems import _message as _plain_message
from okr_pipeline.okr_core.alerting.model import AlertPolicy
from okr_pipeline.okr_core.definitions import ID_PATTERN, FieldError
from okr_pipeline.okr_core.errors import ConfigError, Problem
from okr_pipeline.okr_core.names import PLACEHOLDER, SECRET_NAME_RULE, secret_name_of
from okr_pipeline.okr_core.yaml_tree import YamlProblem, load_tree

__all__ = [
    "DEFAULT_ROUTE",
    "Route",
    "RoutingConfig",
    "RoutingError",
    "load_routing",
    "secret_names",
]

DEFAULT_ROUTE = "default"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+\S*$", re.IGNORECASE)


def secret_names(channel: str) -> list[str]:
    """The ``NAME`` of every ``${secret:NAME}`` in a channel URL, in order."""
    names = (secret_name_of(match[1]) for match in PLACEHOLDER.finditer(channel))
    return [name for name in names if name is not None]


def _redact(channel: str) -> str:
    # For error messages: a channel may (wrongly) hold a literal password or token.
    text = re.sub(r"(^|//)[^/@\s]*@", r"\1***@", channel)
    return text.split("?", 1)[0] + ("?…" if "?" in text else "")


def _check_channel(value: str) -> str:
    value = value.strip()
    # The URL check below sees each secret reference as a plain word.
    rest = PLACEHOLDER.sub(lambda m: "x" if secret_name_of(m[1]) else m[0], value)
    if "${" in rest:
        raise ValueError(
            f"bad secret reference in {_redact(value)!r}: write ${{secret:NAME}}, NAME made of "
            f"{SECRET_NAME_RULE}"
        )
    if not _URL.match(rest):
        raise ValueError(
            f"{_redact(value)!r} is not a channel URL: it needs a scheme, e.g. "
            "json://hooks.example.com/okr, mailto://..., prefect-block://slack-webhook/name"
        )
    return value


def _check_glob(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("an owner glob is empty; write an owner like maya@example.com or *@x.com")
    depth = 0
    for char in value:
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"{value!r} has a '[' without its ']' (fnmatch: [abc] is one of a, b, c)")
    return value


Channel = Annotated[str, AfterValidator(_check_channel)]
Glob = Annotated[str, AfterValidator(_check_glob)]


class Route(BaseModel):
    """A route: the owners it catches (fnmatch globs) and the channels it sends to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=ID_PATTERN)] = Field(
        description="Name of the route, shown in alert records."
    )
    owners: list[Glob] = Field(
        default_factory=list, description="Owner globs, e.g. maya@example.com, *@team.example.com."
    )
    channels: list[Channel] = Field(
        default_factory=list, description="Apprise URLs or prefect-block://<type>/<name>."
    )

    def matches(self, owner: str) -> bool:
        """True when one of the owner globs matches ``owner`` (case-insensitively)."""
        folded = owner.casefold()
        return any(fnmatchcase(folded, glob.casefold()) for glob in self.owners)


class RoutingConfig(BaseModel):
    """The contents of ``alerts.yaml``; all defaults when the file does not exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    report_url: str | None = Field(None, description="The OKR report, linked from messages.")
    defaults: AlertPolicy = Field(
        default_factory=AlertPolicy, description="Alert policy of KRs without an override."
    )
    routes: list[Route] = Field(default_factory=list, description="Routes; first match wins.")
    default_route: Route = Field(
        default_factory=lambda: Route(name=DEFAULT_ROUTE),
        description="Where notifications no route matches go.",
    )

    @field_validator("report_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.match(value.strip()):
            raise ValueError(f"expected an http(s) URL like https://okr.example.com, got {value!r}")
        return value.strip() if value is not None else None

    @field_validator("default_route", mode="before")
    @classmethod
    def _named_default(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" not in value:
            return {"name": DEFAULT_ROUTE, **value}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RoutingConfig:
        for name in ("pending_for", "repeat_interval"):
            if getattr(self.defaults, name) < timedelta(0):
                raise FieldError(("defaults", name), "a duration cannot be negative")
        if self.default_route.name != DEFAULT_ROUTE:
            raise FieldError(("default_route", "name"), "the default route is always 'default'")
        if self.default_route.owners:
            raise FieldError(
                ("default_route", "owners"),
                "the default route takes every owner no route matches; remove 'owners'",
            )
        first: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            if not route.owners:
                raise FieldError(
                    ("routes", index, "owners"),
                    "a route needs at least one owner glob, e.g. owners: ['*@example.com']",
                )
            if route.name == DEFAULT_ROUTE:
                raise FieldError(
                    ("routes", index, "name"),
                    "'default' is the default route's name; configure it under default_route",
                )
            if route.name in first:
                raise FieldError(
                    ("routes", index, "name"),
                    f"route name {route.name!r} is already used by routes[{first[route.name]}]",
                )
            first[route.name] = index
        return self

    def route_for(self, owner: str) -> Route:
        """The first route whose owner globs match ``owner``, else the default route."""
        for route in self.routes:
            if route.matches(owner):
                return route
        return self.default_route


class RoutingError(ConfigError):
    """``alerts.yaml`` does not validate.

    Attributes:
        problems: Every problem found, in file order, each with its line.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=lambda p: p.line or 0)
        if len(self.problems) == 1:
            super().__init__(str(self.problems[0]))
        else:
            lines = [f"{len(self.problems)} problems in the alert routing file:"]
            lines.extend(f"  {problem}" for problem in self.problems)
            super().__init__("\n".join(lines))


_CHILDREN: dict[str, type[BaseModel]] = {
    "defaults": AlertPolicy,
    "routes": Route,
    "default_route": Route,
}


def _model_at(loc: Loc) -> type[BaseModel]:
    names = [part for part in loc if isinstance(part, str)]
    return _CHILDREN.get(names[0], RoutingConfig) if names else RoutingConfig


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        valid = list(_model_at(loc[:-1]).model_fields)
        close = (
            difflib.get_close_matches(key, valid, n=1)
            or [name for name in valid if name.startswith(key)][:1]
        )
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {key!r} ({hint}valid: {', '.join(valid)})"
    if kind.startswith("time_delta") or (kind == "timedelta_type"):
        return f"expected a duration like 30m, 6h, 3d or 1w, got {error.get('input')!r}"
    return _plain_message(error, loc, in_file_model=False)


def _problems(exc: ValidationError, file: Path, root: Any) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc: list[str | int] = list(error["loc"])
        ctx = error.get("ctx") or {}
        if isinstance(ctx.get("error"), FieldError):
            loc.extend(ctx["error"].path)
        # Pydantic tags function validators in the loc (e.g. "function-after[...]").
        loc = [part for part in loc if not (isinstance(part, str) and "[" in part)]
        message = one_line(_message(error, loc))
        problems.append(Problem(file, format_loc(loc), line_of(root, loc), message))
    return problems


def _plain(node: Any) -> Any:
    """Ruamel's round-trip types -> plain dict/list/str/int/float/bool for validation."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(value) for value in node]
    if isinstance(node, bool):
        return bool(node)
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node if node is None else str(node)


def load_routing(path: Path) -> RoutingConfig:
    """Read ``alerts.yaml``.

    Args:
        path: The file; when it does not exist, every default applies (no routes, and a
            default route without channels).

    Returns:
        The validated routing.

    Raises:
        RoutingError: A ConfigError listing every problem as ``alerts.yaml:LINE: loc: message``.
    """
    path = Path(path)
    if not path.exists():
        return RoutingConfig()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RoutingError(
            [Problem(path, "", None, f"cannot read: {exc.strerror or exc}")]
        ) from exc
    try:
        root = load_tree(path, data)
    except YamlProblem as exc:
        raise RoutingError([exc.problem]) from exc
    if root is None:
        return RoutingConfig()
    if not isinstance(root, CommentedMap):
        raise RoutingError(
            [Problem(path, "", 1, "the top level must be a mapping (routes:, default_route:, ...)")]
        )
    try:
        return RoutingConfig.model_validate(_plain(root))
    except ValidationError as exc:
        raise RoutingError(_problems(exc, path, root)) from exc
    except RecursionError as exc:
        raise RoutingError([Problem(path, "", None, "the YAML is nested too deeply")]) from exc

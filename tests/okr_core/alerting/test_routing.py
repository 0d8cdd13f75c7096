"""alerts.yaml: routes, first match wins, defaults; every mistake named with its line."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from okr_pipeline.okr_core.alerting.routing import (
    Route,
    RoutingConfig,
    RoutingError,
    load_routing,
    secret_names,
)
from okr_pipeline.okr_core.errors import ConfigError

EXAMPLE = """\
report_url: https://okr.example.com/status
defaults:
  pending_evaluations: 3
  repeat_interval: 1w
  pending_for: 30m
routes:
  - name: podcasts
    owners: ["maya@example.com", "*@podcasts.example.com"]
    channels:
      - "json://hooks.example.com/okr"
      - "mailto://${secret:smtp_user}:${secret:smtp_password}@smtp.example.com?to=pm@example.com"
      - "prefect-block://slack-webhook/podcasts"
  - name: data-team
    owners: ["data-team"]
    channels: ["json://hooks.example.com/data"]
default_route:
  channels: ["json://hooks.example.com/okr-catchall"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_example_loads(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, EXAMPLE))
    assert routing.report_url == "https://okr.example.com/status"
    assert routing.defaults.pending_evaluations == 3
    assert routing.defaults.repeat_interval == timedelta(weeks=1)
    assert routing.defaults.pending_for == timedelta(minutes=30)
    assert routing.defaults.no_data == "keep"
    assert [r.name for r in routing.routes] == ["podcasts", "data-team"]
    assert routing.default_route == Route(
        name="default", owners=[], channels=["json://hooks.example.com/okr-catchall"]
    )


@pytest.mark.parametrize(
    ("owner", "route"),
    [
        ("maya@example.com", "podcasts"),
        ("Maya@Example.COM", "podcasts"),  # e-mail addresses in any case
        ("lee@podcasts.example.com", "podcasts"),
        ("data-team", "data-team"),
        ("data-team-2", "default"),
        ("lee@example.com", "default"),
        ("", "default"),
    ],
)
def test_route_for_first_match_else_default(tmp_path: Path, owner: str, route: str) -> None:
    assert load_routing(write(tmp_path, EXAMPLE)).route_for(owner).name == route


def test_first_match_wins() -> None:
    routing = RoutingConfig(
        routes=[
            Route(name="a", owners=["*@example.com"], channels=[]),
            Route(name="b", owners=["maya@example.com"], channels=[]),
        ]
    )
    assert routing.route_for("maya@example.com").name == "a"


@pytest.mark.parametrize("content", [None, "", "# nothing configured yet\n"])
def test_missing_or_empty_file_gives_defaults(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "alerts.yaml"
    if content is not None:
        path.write_text(content)
    routing = load_routing(path)
    assert routing == RoutingConfig()
    assert routing.routes == []
    assert routing.report_url is None
    assert routing.default_route == Route(name="default", owners=[], channels=[])
    assert routing.route_for("anyone").name == "default"


def test_secret_names() -> None:
    url = "mailto://${secret:smtp_user}:${secret:smtp_password}@smtp.example.com"
    assert secret_names(url) == ["smtp_user", "smtp_password"]
    assert secret_names("json://hooks.example.com") == []


ROUTE = "routes:\n  - name: a\n    owners: [x]\n    channels: [json://h/x]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "report_url: https://x\nroutes: []\nrouts: []\n",
            "alerts.yaml:3: routs: unknown key 'routs' (did you mean 'routes'?",
        ),
        (
            "defaults:\n  pending_evaluations: 2\n  repeat: 3d\n",
            "alerts.yaml:3: defaults.repeat: unknown key 'repeat' (did you mean 'repeat_interval'?",
        ),
        (
            "defaults:\n  repeat_interval: 3x\n",
            "alerts.yaml:2: defaults.repeat_interval: expected a duration like 30m, 6h, 3d or 1w, "
            "got '3x'",
        ),
        (
            "defaults:\n  pending_for: -5\n",
            "alerts.yaml:2: defaults.pending_for: a duration cannot be negative",
        ),
        (
            "defaults:\n  pending_evaluations: 0\n",
            "alerts.yaml:2: defaults.pending_evaluations:",
        ),
        (
            "defaults:\n  no_data: ignore\n",
            "alerts.yaml:2: defaults.no_data: must be one of 'keep', 'alert' or 'normal', "
            "got the text 'ignore'",
        ),
        (
            ROUTE + "  - name: b\n    owners: [y, '[abc']\n    channels: []\n",
            "alerts.yaml:6: routes[1].owners[1]: '[abc' has a '[' without its ']'",
        ),
        (
            ROUTE + "  - name: b\n    owners: [y, '  ']\n",
            "alerts.yaml:6: routes[1].owners[1]: an owner glob is empty",
        ),
        (
            ROUTE + "  - name: b\n    owners: []\n",
            "alerts.yaml:6: routes[1].owners: a route needs at least one owner glob",
        ),
        (
            ROUTE + "  - name: b\n    owners: [y]\n    channels:\n      - json://ok/x\n"
            "      - hooks.example.com/okr\n",
            "alerts.yaml:9: routes[1].channels[1]: 'hooks.example.com/okr' is not a channel URL",
        ),
        (
            ROUTE + "  - name: b\n    owners: [y]\n    channels: ['json://${secret:1bad}@h']\n",
            "alerts.yaml:7: routes[1].channels[0]: bad secret reference in 'json://***@h': write "
            "${secret:NAME}, NAME made of a letter or '_', then letters, digits, '_', '.' or '-'",
        ),
        (
            ROUTE + "  - name: b\n    owners: [y]\n    channels: ['json://${smtp_user}@h']\n",
            "alerts.yaml:7: routes[1].channels[0]: bad secret reference",
        ),
        (
            ROUTE + "  - name: a\n    owners: [y]\n",
            "alerts.yaml:5: routes[1].name: route name 'a' is already used by routes[0]",
        ),
        (
            ROUTE + "  - name: default\n    owners: [y]\n",
            "alerts.yaml:5: routes[1].name: 'default' is the default route's name",
        ),
        (
            "routes:\n  - owners: [y]\n",
            "alerts.yaml:2: routes[0].name: missing required key 'name'",
        ),
        (
            "routes:\n  - name: a b\n    owners: [y]\n",
            "alerts.yaml:2: routes[0].name: 'a b' is not a valid id",
        ),
        (
            "routes:\n  - name: a\n    owner: [y]\n",
            "alerts.yaml:3: routes[0].owner: unknown key 'owner' (did you mean 'owners'?",
        ),
        (
            "routes:\n  name: a\n",
            "alerts.yaml:1: routes: expected a list, got a mapping",
        ),
        (
            "default_route:\n  owners: ['*']\n  channels: []\n",
            "alerts.yaml:2: default_route.owners: the default route takes every owner",
        ),
        (
            "default_route:\n  name: catchall\n",
            "alerts.yaml:2: default_route.name: the default route is always 'default'",
        ),
        (
            "report_url: okr.example.com\n",
            "alerts.yaml:1: report_url: expected an http(s) URL",
        ),
        ("routes: [\n", "alerts.yaml:2: YAML syntax error"),
        ("routes: []\nroutes: []\n", "alerts.yaml:2: YAML syntax error"),
        ("- a\n- b\n", "alerts.yaml:1: the top level must be a mapping"),
    ],
)
def test_mistakes_are_named_with_their_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_routing(path)
    assert isinstance(info.value, RoutingError)
    message = str(info.value)
    assert expected in message, message
    assert str(path) in message


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  repeat_interval: soon\nroutes:\n  - name: a\n    owners: [x]\n"
        "    channels: [nope]\n",
    )
    with pytest.raises(RoutingError) as info:
        load_routing(path)
    assert [(p.line, p.loc) for p in info.value.problems] == [
        (2, "defaults.repeat_interval"),
        (6, "routes[0].channels[0]"),
    ]
    assert str(info.value).startswith("2 problems in the alert routing file:")


def test_a_literal_password_in_a_bad_channel_is_not_echoed(tmp_path: Path) -> None:
    path = write(
        tmp_path, "routes:\n  - name: a\n    owners: [x]\n    channels: ['user:hunter2@smtp']\n"
    )
    with pytest.raises(RoutingError) as info:
        load_routing(path)
    assert "hunter2" not in str(info.value)
    assert "***@smtp" in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_bytes(b"routes: [\xff]\n")
    with pytest.raises(RoutingError, match="not UTF-8"):
        load_routing(path)

"""A JSONPath that matches nothing: no data, or a path that does not exist in the answer.

The rule (``connectors.http_extract``): a missing key, or a key or index applied to the
wrong kind of value, is an error naming the path, the deepest part that matched and what is
there; null, NaN, an empty list, an index past the end of a list, or a wildcard, slice or
filter selecting nothing from a container that exists, is no data (None).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.http import HttpSource, HttpSourceConfig
from okr_pipeline.connectors.http_extract import (
    MAX_KEYS_SHOWN,
    AnswerError,
    NotJson,
    PathNotFound,
    extract_value,
)

NPS = '{"data": {"nps": {"score": 41, "responses": 120}}}'
PROM = '{"status": "success", "data": {"result": [{"value": [1700000000, "42.5"]}]}}'
PROM_EMPTY = '{"status": "success", "data": {"result": []}}'
ITEMS = '{"items": [{"id": 1, "v": 10}, {"id": 2, "v": null}]}'


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        # The path exists and holds a number.
        (NPS, "$.data.nps.score", Decimal(41)),
        (PROM, "$.data.result[0].value[1]", Decimal("42.5")),
        (ITEMS, "$.items[?(@.id == 1)].v", Decimal(10)),
        (ITEMS, "$.items[-1].id", Decimal(2)),
        ('{"a b": {"c": 3}}', "$['a b'].c", Decimal(3)),
        # The path exists; the answer holds nothing there this time: no data.
        ('{"total": null}', "$.total", None),
        ('{"total": NaN}', "$.total", None),
        ('{"total": "NaN"}', "$.total", None),
        ('{"total": []}', "$.total", None),
        ('{"data": null}', "$.data.nps.score", None),
        (PROM_EMPTY, "$.data.result[0].value[1]", None),
        (PROM, "$.data.result[3].value[1]", None),
        ("[]", "$[0]", None),
        (ITEMS, "$.items[?(@.id == 3)].v", None),
        (ITEMS, "$.items[?(@.id == 2)].v", None),
        ('{"items": []}', "$.items[*].v", None),
        ('{"items": []}', "$.items[1:3]", None),
        ('{"m": {}}', "$.m.*", None),
    ],
)
def test_values_and_no_data(body: str, path: str, expected: Decimal | None):
    assert extract_value(body.encode(), path) == expected


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        # The case: a typo in the last key.
        (
            NPS,
            "$.data.nps.scor",
            "value_path $.data.nps.scor matched nothing: $.data.nps has keys: score, responses",
        ),
        (NPS, "$.dta.nps.score", "value_path $.dta.nps.score matched nothing: $ has keys: data"),
        ('{"total": 42}', "$.missing", "matched nothing: $ has keys: total"),
        ('{"data": {}}', "$.data.total", "matched nothing: $.data is an empty object"),
        # A key asked of a list, a number, a string.
        (
            PROM,
            "$.data.result.value",
            "$.data.result is a list, not an object; select an element first, e.g. [0] or [*]",
        ),
        ('{"total": 42}', "$.total.value", "$.total is a number, not an object"),
        ('{"total": "x"}', "$.total.value", "$.total is a string, not an object"),
        ("[1, 2]", "$.total", "$ is a list, not an object"),
        # An index asked of an object or a number.
        (NPS, "$.data[0]", "$.data is an object, not a list; it has keys: nps"),
        ('{"total": 42}', "$.total[0]", "$.total is a number, not a list"),
        # Deeper steps after a wildcard or filter name the wildcard part.
        (ITEMS, "$.items[*].w", "matched nothing: $.items[*] has keys: id, v"),
        (ITEMS, "$.items[?(@.id == 1)].w", "$.items[?(@.id == 1)] has keys: id, v"),
        # A search for a key found nowhere.
        (NPS, "$..scor", "matched nothing: no key scor anywhere under $"),
        (NPS, "$.data..scor", "no key scor anywhere under $.data"),
        # Wildcards on a number.
        ('{"total": 42}', "$.total[*]", "$.total is a number, not a list or object"),
    ],
)
def test_path_not_in_the_answer(body: str, path: str, message: str):
    with pytest.raises(PathNotFound) as info:
        extract_value(body.encode(), path)
    assert message in str(info.value)
    assert str(info.value).startswith(f"value_path {path} matched nothing: ")


@pytest.mark.parametrize(
    ("body", "path", "error", "message"),
    [
        ('{"items": [1, 2]}', "$.items[*]", AnswerError, "matched 2 values; expected 1"),
        ('{"total": [1]}', "$.total", AnswerError, "value at $.total is a list, not a number"),
        ('{"total": {}}', "$.total", AnswerError, "value at $.total is an object"),
        ('{"total": true}', "$.total", type(None), ""),
        ("<html>", "$.total", NotJson, "Expecting value"),
        ("[" * 100_000, "$.total", NotJson, "nested too deeply"),
    ],
)
def test_other_answer_errors(body: str, path: str, error: type[Exception], message: str):
    if error is type(None):
        assert extract_value(body.encode(), path) == Decimal(1)
        return
    with pytest.raises(error, match=message.replace("$", r"\$").replace("[", r"\[")):
        extract_value(body.encode(), path)


def test_many_keys_are_cut_short():
    body = "{" + ", ".join(f'"k{i}": {i}' for i in range(50)) + "}"
    with pytest.raises(PathNotFound) as info:
        extract_value(body.encode(), "$.nope")
    assert f"k{MAX_KEYS_SHOWN - 1} ... ({50 - MAX_KEYS_SHOWN} more)" in str(info.value)
    assert f"k{MAX_KEYS_SHOWN}," not in str(info.value)


@pytest.mark.usefixtures("cassette")
def test_typo_is_a_fatal_source_error(http_env: SourceEnvironment, ctx: SourceContext):
    # Through the source against the test API: the KR's error, not no data, and it names
    # the KR and the call.
    cfg = HttpSourceConfig.model_validate(
        {"type": "http", "connection": "api", "path": "/nps", "value_path": "$.data.nps.scor"}
    )
    with HttpSource(http_env) as source, pytest.raises(FatalSourceError) as info:
        source.fetch(cfg, ctx)
    message = str(info.value)
    assert message.startswith("KR growth/signups: http source GET http://")
    assert message.endswith(
        "/nps: value_path $.data.nps.scor matched nothing: $.data.nps has keys: score, responses"
    )

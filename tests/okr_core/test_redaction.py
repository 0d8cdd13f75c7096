"""The one redactor: one table of cases, input → expected output.

``CASES`` is also run against the output paths (the ``okr`` command's error line, source
errors, alert records, logs) in ``tests/cli/test_redaction_paths.py``.
"""

from __future__ import annotations

import base64
from typing import NamedTuple

import pytest

from okr_pipeline.connectors import redaction as connectors_redaction
from okr_pipeline.okr_core import redaction
from okr_pipeline.okr_core.redaction import (
    Redactor,
    is_sensitive_key,
    mask_url,
    redact_text,
    redact_value,
)
from okr_pipeline.okr_core.settings import mask_url as settings_mask_url


class Case(NamedTuple):
    text: str
    expected: str
    secret: str | None  # the part that must never be shown (None: nothing to hide)


CASES: list[Case] = [
    # Passwords in URLs, "/" and "@" inside included.
    Case("postgresql://bob:pw@host/db", "postgresql://bob:***@host/db", "pw@"),
    Case("postgresql://bob:p/w@host/db", "postgresql://bob:***@host/db", "p/w"),
    Case(
        "postgresql+psycopg://bob:p@ss:w/rd@host:5432/db",
        "postgresql+psycopg://bob:***@host:5432/db",
        "p@ss:w/rd",
    ),
    Case("mysql+pymysql://okr:s3/cr@t@db/okr", "mysql+pymysql://okr:***@db/okr", "s3/cr@t"),
    Case(
        "mysql+pymysql://root:xyz@127.0.0.1:3306/test?charset=utf8",
        "mysql+pymysql://root:***@127.0.0.1:3306/test?charset=utf8",
        "xyz",
    ),
    Case("redis://:only-pw@cache:6379/0", "redis://:***@cache:6379/0", "only-pw"),
    Case("https://u:p@ss@h/x?y=1", "https://u:***@h/x?y=1", "p@ss"),
    Case(
        "see https://u:t0k@a/x and ftp://v:w1@b", "see https://u:***@a/x and ftp://v:***@b", "t0k"
    ),
    # Credentials in query strings and key=value text.
    Case("/v1?refresh_token=r3fr3sh&x=1", "/v1?refresh_token=***&x=1", "r3fr3sh"),
    Case("/v1?access_token=acc3ss&x=1", "/v1?access_token=***&x=1", "acc3ss"),
    Case("/v1?api_key=abc123&x=1", "/v1?api_key=***&x=1", "abc123"),
    Case("/v1?apikey=abc124", "/v1?apikey=***", "abc124"),
    Case("/v1?x=1&key=abc125", "/v1?x=1&key=***", "abc125"),
    Case("/v1?sig=zz9&signature=zz8", "/v1?sig=***&signature=***", "zz9"),
    Case("/v1?client_secret=cl1ent", "/v1?client_secret=***", "cl1ent"),
    Case("/v1?API_KEY=abc126", "/v1?API_KEY=***", "abc126"),
    Case("/v1?token=t0k3n;x=1", "/v1?token=***", "t0k3n"),
    Case("/v1?password=pa55&passwd=pa56&pwd=pa57", "/v1?password=***&passwd=***&pwd=***", "pa5"),
    Case(
        "/s3?X-Amz-Signature=f00d&session_token=b33f",
        "/s3?X-Amz-Signature=***&session_token=***",
        "f00d",
    ),
    Case("host=db password=hunt3r dbname=x", "host=db password=*** dbname=x", "hunt3r"),
    # Auth headers, as lines, dict reprs and bare schemes.
    Case("Authorization: Bearer abc.def", "Authorization: ***", "abc.def"),
    Case("sent Bearer abc.def", "sent Bearer ***", "abc.def"),
    Case("Basic dTpwdw==", "Basic ***", "dTpwdw=="),
    Case("{'x-api-key': 'k3y'}", "{'x-api-key': ***}", "k3y"),
    Case("X-Auth-Token: t0k-v4l", "X-Auth-Token: ***", "t0k-v4l"),
    Case('{"refresh_token": "r3f"}', '{"refresh_token": ***}', "r3f"),
    Case("Cookie: sid=c00kie", "Cookie: ***", "c00kie"),
    # Nothing secret: left as it is.
    Case("/v1?monkey=banana", "/v1?monkey=banana", None),
    Case(
        "https://api.example.com:8443/a?email=a@b.com",
        "https://api.example.com:8443/a?email=a@b.com",
        None,
    ),
    Case("sqlite:////tmp/okr.db", "sqlite:////tmp/okr.db", None),
    Case("postgresql://bob@host/db", "postgresql://bob@host/db", None),
    Case("postgresql://bob:@host/db", "postgresql://bob:@host/db", None),
    Case("nothing here", "nothing here", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.text[:40] for c in CASES])
def test_table(case: Case) -> None:
    assert redact_text(case.text) == case.expected
    assert Redactor()(case.text) == case.expected
    if case.secret is not None:
        assert case.secret not in case.expected


@pytest.mark.parametrize("case", CASES, ids=[c.text[:40] for c in CASES])
def test_mask_url_is_the_same_redactor(case: Case) -> None:
    assert mask_url(case.text) == settings_mask_url(case.text) == case.expected


def test_one_implementation() -> None:
    # connectors.redaction is a re-export for connector code, not a second redactor.
    assert connectors_redaction.Redactor is Redactor
    assert connectors_redaction.redact_text is redact_text
    assert settings_mask_url is redaction.mask_url


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("the key is s3cr3t!", ["s3cr3t!"], "the key is ***"),
        ("quoted s3cr3t%21", ["s3cr3t!"], "quoted ***"),
        ("plus a%2Bb%2Fc", ["a+b/c"], "plus ***"),
        ("long one first: abcdef", ["abc", "abcdef"], "long one first: ***"),
        ("empty secrets are ignored", [""], "empty secrets are ignored"),
    ],
)
def test_known_secret_values(text: str, secrets: list[str], expected: str) -> None:
    assert Redactor(secrets)(text) == expected


def test_basic_auth_token_and_repr() -> None:
    token = base64.b64encode(b"u:pw").decode()
    assert Redactor().with_basic("u", "pw")(f"got {token}") == "got ***"
    assert "pw" not in repr(Redactor(["pw"]))


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("refresh_token", True),
        ("X-Amz-Signature", True),
        ("aws_secret_access_key", True),
        ("config.token", True),
        ("sig", True),
        ("monkey", False),
        ("tokens_used", False),
        ("limit", False),
    ],
)
def test_sensitive_key_names(name: str, sensitive: bool) -> None:
    assert is_sensitive_key(name) is sensitive


def test_redact_value_for_repr() -> None:
    value = {
        "Authorization": "Bearer lit",
        "refresh_token": "r3f",
        "X-Other": "plain",
        "Auth": "Bearer ${secret:t}",
        "url": "https://a:b/c@h/x?access_token=zz",
    }
    assert redact_value(value) == {
        "Authorization": "***",
        "refresh_token": "***",
        "X-Other": "plain",
        "Auth": "Bearer ${secret:t}",
        "url": "https://a:***@h/x?access_token=***",
    }


def test_long_texts_are_scanned_in_linear_time() -> None:
    # Minified JSON full of URLs with ports and no "@": each URL used to be scanned to the end
    # of the text (quadratic); 50,000 of them must take well under a second.
    import time

    body = '{"a":"http://h:80/x","b":"a.b.c-d"}' * 50_000
    started = time.perf_counter()
    assert redact_text(body) == body
    assert time.perf_counter() - started < 5

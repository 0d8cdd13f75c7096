"""The checks of the connector contract as plain functions; each raises AssertionError.

:mod:`connectors.testing` runs them from a pytest class; they are here, without pytest, so
that any test runner can call them and so that a deliberately broken connector can be shown
to fail each one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, get_args
from urllib.parse import urlsplit

from pydantic import ValidationError

from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError, RetriableSourceError, SourceError
from okr_pipeline.okr_core.errors import ConfigError

__all__ = [
    "EXPECTED_ERRORS",
    "MIN_SECRET_LENGTH",
    "SCENARIOS",
    "check_close_idempotent",
    "check_failure",
    "check_fields_described",
    "check_missing_fields_named",
    "check_no_secrets",
    "check_thread_safety",
    "check_type_declaration",
    "check_unknown_field_refused",
    "check_value",
    "secret_values",
]

EXPECTED_ERRORS: Mapping[str, type[SourceError]] = {
    "timeout": RetriableSourceError,  # no answer within the timeout
    "rate_limited": RetriableSourceError,  # HTTP 429, or the service's "slow down"
    "server_error": RetriableSourceError,  # HTTP 5xx, or the server unreachable
    "unauthorized": FatalSourceError,  # HTTP 401, or credentials refused at login
    "bad_shape": FatalSourceError,  # an answer that holds no single number
}
"""The failure scenarios a connector arranges, and the error class each must raise."""

SCENARIOS = tuple(EXPECTED_ERRORS)

# A shorter secret would turn up in ordinary text by chance and prove nothing.
MIN_SECRET_LENGTH = 8


def secret_values(env: SourceEnvironment) -> set[str]:
    """Every secret an environment holds: secrets, URL passwords, connection headers.

    Args:
        env: The environment of the connector under test.

    Returns:
        The secret values, in clear.
    """
    values = {secret.get_secret_value() for secret in env.secrets.values()}
    for connection in env.connections.values():
        password = urlsplit(connection.url.get_secret_value()).password
        if password:
            values.add(password)
        values.update(header.get_secret_value() for header in connection.headers.values())
    return values


def check_no_secrets(texts: Mapping[str, str], secrets: Iterable[str]) -> None:
    """Assert that no secret appears in any of the texts.

    Args:
        texts: What is shown to users or logs, by a name for the message.
        secrets: The secret values.
    """
    for what, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaks through {what}: {text!r}"


def check_type_declaration(source_class: type[BaseSource[Any]]) -> None:
    """Assert that a source class declares its type name, config model and docstring.

    Args:
        source_class: The connector's ``BaseSource`` subclass.
    """
    assert isinstance(source_class, type) and issubclass(source_class, BaseSource), (
        f"{source_class!r} is not a BaseSource subclass"
    )
    type_name = getattr(source_class, "type_name", None)
    assert isinstance(type_name, str) and type_name, "set type_name = '<type>'"
    model = getattr(source_class, "config_model", None)
    assert isinstance(model, type) and issubclass(model, BaseSourceConfig), (
        "config_model must be a BaseSourceConfig subclass"
    )
    declared = get_args(model.model_fields["type"].annotation)
    assert declared == (type_name,), f"config_model needs type: Literal[{type_name!r}]"
    assert (source_class.__doc__ or "").strip(), "the class needs a docstring (okr connectors)"


def check_fields_described(model: type[BaseSourceConfig]) -> None:
    """Assert that every field of a config model has a description (for ``okr schema``).

    Args:
        model: The connector's config model.
    """
    properties = model.model_json_schema()["properties"]
    undocumented = sorted(name for name, p in properties.items() if not p.get("description"))
    assert not undocumented, f"fields without Field(description=...): {undocumented}"


def _validate(model: type[BaseSourceConfig], raw: Mapping[str, Any]) -> Exception | None:
    try:
        model.model_validate(dict(raw))
    except (ValidationError, ConfigError) as exc:
        return exc
    except Exception as exc:
        raise AssertionError(
            f"an invalid config raised {type(exc).__name__}: {exc}; raise a pydantic "
            f"ValidationError (a validator's ValueError) or a SourceConfigError"
        ) from exc
    return None


def check_unknown_field_refused(model: type[BaseSourceConfig], valid: Mapping[str, Any]) -> None:
    """Assert that a valid config with one unknown key is refused, naming the key.

    Args:
        model: The connector's config model.
        valid: A valid ``source:`` mapping.
    """
    error = _validate(model, {**valid, "bogus_key": 1})
    assert error is not None, "an unknown key 'bogus_key' was accepted (a typo would be ignored)"
    assert "bogus_key" in str(error), f"the error does not name 'bogus_key': {error}"


def check_missing_fields_named(
    model: type[BaseSourceConfig], type_name: str, required: Iterable[str]
) -> None:
    """Assert that a config holding only ``type`` is refused, naming each required field.

    Args:
        model: The connector's config model.
        type_name: The connector's type name.
        required: Keys a config cannot do without.
    """
    error = _validate(model, {"type": type_name})
    assert error is not None, "a config with only 'type' was accepted"
    text = str(error)
    unnamed = sorted(name for name in required if name not in text)
    assert not unnamed, f"the error does not name the missing fields {unnamed}: {text}"


def check_value(value: object, expected: Decimal | None) -> None:
    """Assert that a fetched value is the expected exact ``Decimal``, or ``None``.

    Args:
        value: What ``fetch`` returned.
        expected: The value the valid config must give.
    """
    if value is None:
        assert expected is None, f"fetch returned None (no data), expected {expected}"
        return
    assert isinstance(value, Decimal), (
        f"fetch returned {type(value).__name__} {value!r}; return a Decimal (exact) or None"
    )
    assert value.is_finite(), f"fetch returned {value!r}; return None for no data"
    assert value == expected, f"fetch returned {value!r}, expected {expected!r}"


def check_failure(
    fetch: Callable[[], object],
    expected: type[SourceError],
    kr_ref: str,
    secrets: Iterable[str],
) -> SourceError:
    """Assert that a fetch raises the expected error class, naming the KR, without secrets.

    Args:
        fetch: Runs the failing fetch.
        expected: ``RetriableSourceError`` or ``FatalSourceError``.
        kr_ref: The KR reference of the context, which the message must name.
        secrets: Values that must not appear in the error's message or repr.

    Returns:
        The error raised.
    """
    try:
        value = fetch()
    except SourceError as exc:
        error = exc
    except Exception as exc:
        raise AssertionError(
            f"raised {type(exc).__name__}: {exc}; expected {expected.__name__} (a SourceError "
            f"lets the run retry or report it)"
        ) from exc
    else:
        raise AssertionError(f"returned {value!r}; expected {expected.__name__}")
    assert isinstance(error, expected), (
        f"raised {type(error).__name__}: {error}; expected {expected.__name__}"
    )
    assert kr_ref in str(error), f"the message does not name the KR {kr_ref!r}: {error}"
    check_no_secrets({"str(error)": str(error), "repr(error)": repr(error)}, secrets)
    return error


def check_thread_safety(
    fetch: Callable[[], object], expected: Decimal | None, threads: int = 16, rounds: int = 4
) -> None:
    """Assert that many threads fetching at once on one instance all get the right value.

    Args:
        fetch: One fetch on the shared instance.
        expected: The value every fetch must give.
        threads: Threads started together.
        rounds: Fetches per thread.
    """
    start = threading.Barrier(threads)

    def work() -> list[object]:
        start.wait()  # all threads begin together, so first-use races happen
        return [fetch() for _ in range(rounds)]

    with ThreadPoolExecutor(threads) as pool:
        results = [value for batch in pool.map(lambda _: work(), range(threads)) for value in batch]
    wrong = [value for value in results if not _same(value, expected)]
    assert not wrong, f"{len(wrong)} of {len(results)} concurrent fetches gave {wrong[:3]!r}"


def _same(value: object, expected: Decimal | None) -> bool:
    if expected is None:
        return value is None
    return isinstance(value, Decimal) and value == expected


def check_close_idempotent(source: BaseSource[Any]) -> None:
    """Assert that ``close()`` may be called twice.

    Args:
        source: A source that has fetched.
    """
    source.close()
    source.close()

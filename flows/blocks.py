"""Connections and secrets kept in Prefect blocks, read when a run starts.

A team that keeps its credentials in Prefect names the block instead of the value::

    OKR_CONNECTIONS__WAREHOUSE__URL=prefect-block://sqlalchemy-connector/warehouse
    OKR_SECRETS__GA4_KEY=prefect-block://secret/ga4-key

``sqlalchemy-connector`` is prefect-sqlalchemy's ``SqlAlchemyConnector`` block: its
connection info (a URL, or driver, host, port, database, user, password and query) becomes
the connection's SQLAlchemy URL. ``secret`` is Prefect's ``Secret`` block: its value
becomes the secret (a JSON value, such as a service-account key, as JSON text); as a
connection URL, the secret holds the URL. The block documents are read through Prefect's
client, so prefect-sqlalchemy need not be installed where the run happens.

The values go into the run's settings as ``SecretStr``: they are never stored, and the
messages here name the setting and the block, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import PREFECT_BLOCK_SCHEME, Settings, settings_in_blocks

__all__ = ["BLOCK_TYPES", "block_reference", "resolve_blocks", "uses_blocks"]

SQLALCHEMY_CONNECTOR = "sqlalchemy-connector"
SECRET = "secret"

#: The block types a setting may name, with what their documents give.
BLOCK_TYPES = {
    SQLALCHEMY_CONNECTOR: "a SQLAlchemy URL (connections only)",
    SECRET: "its value",
}

#: Reads a block document's data: ``(block type slug, block name) -> data``.
BlockReader = Callable[[str, str], Mapping[str, Any]]


def block_reference(value: str, setting: str) -> tuple[str, str] | None:
    """The block a setting's value names, or None when it holds a plain value.

    Args:
        value: The setting's value.
        setting: Its environment variable, for the message.

    Returns:
        ``(block type slug, block name)`` or None.

    Raises:
        ConfigError: A ``prefect-block://`` value that is not ``<type>/<name>`` of a known type.
    """
    if not value.startswith(PREFECT_BLOCK_SCHEME):
        return None
    kind, _, name = value[len(PREFECT_BLOCK_SCHEME) :].partition("/")
    if kind not in BLOCK_TYPES or not name or "/" in name:
        known = ", ".join(f"prefect-block://{slug}/<name>" for slug in BLOCK_TYPES)
        raise ConfigError(f"{setting}: {value!r} names no Prefect block; valid: {known}")
    return kind, name


def uses_blocks(settings: Settings) -> bool:
    """True when a connection URL or a secret of ``settings`` names a Prefect block.

    Args:
        settings: The settings as loaded.

    Returns:
        Whether :func:`resolve_blocks` has anything to do.
    """
    return bool(settings_in_blocks(settings))


def resolve_blocks(settings: Settings, read: BlockReader | None = None) -> Settings:
    """The settings with every ``prefect-block://`` connection URL and secret read.

    Args:
        settings: The settings as loaded.
        read: Reads a block document's data; default: Prefect's client, against the
            configured Prefect API.

    Returns:
        The settings with values in place of the references (unchanged when none).

    Raises:
        ConfigError: A reference is malformed, names a block that does not exist or of
            the wrong type, or the block holds no usable value.
    """
    if not uses_blocks(settings):
        return settings
    reader = read or _read_with_client
    connections = dict(settings.connections)
    for name, connection in settings.connections.items():
        setting = f"OKR_CONNECTIONS__{name.upper()}__URL"
        ref = block_reference(connection.url.get_secret_value(), setting)
        if ref is not None:
            url = _connection_url(ref, _data(reader, ref, setting), setting)
            connections[name] = connection.model_copy(update={"url": SecretStr(url)})
    secrets = dict(settings.secrets)
    for name, secret in settings.secrets.items():
        setting = f"OKR_SECRETS__{name.upper()}"
        ref = block_reference(secret.get_secret_value(), setting)
        if ref is not None:
            if ref[0] != SECRET:
                raise ConfigError(
                    f"{setting}: a secret comes from a 'secret' block, not "
                    f"'{ref[0]}' (prefect-block://secret/<name>)"
                )
            secrets[name] = SecretStr(_secret_value(_data(reader, ref, setting), setting))
    return settings.model_copy(update={"connections": connections, "secrets": secrets})


def _data(read: BlockReader, ref: tuple[str, str], setting: str) -> Mapping[str, Any]:
    from prefect.exceptions import ObjectNotFound

    kind, name = ref
    try:
        return read(kind, name)
    except ObjectNotFound:
        raise ConfigError(
            f"{setting}: there is no Prefect block '{kind}/{name}'; create it (Prefect UI, "
            f"Blocks) or fix the name"
        ) from None


def _read_with_client(kind: str, name: str) -> Mapping[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name, kind, include_secrets=True)
    return document.data


def _secret_value(data: Mapping[str, Any], setting: str) -> str:
    value = data.get("value")
    if value is None:
        raise ConfigError(f"{setting}: the Prefect secret block holds no value")
    return value if isinstance(value, str) else json.dumps(value)


def _connection_url(ref: tuple[str, str], data: Mapping[str, Any], setting: str) -> str:
    if ref[0] == SECRET:
        return _secret_value(data, setting)
    info = data.get("connection_info")
    try:
        if isinstance(info, str):
            url = make_url(info)
        elif isinstance(info, Mapping) and info.get("driver"):
            port = info.get("port")
            url = URL.create(
                drivername=str(info["driver"]),
                username=info.get("username"),
                password=info.get("password"),
                host=info.get("host"),
                port=int(port) if port is not None else None,
                database=info.get("database"),
                query=info.get("query") or {},
            )
        else:
            raise ConfigError(
                f"{setting}: the Prefect block '{ref[0]}/{ref[1]}' has no connection info"
            )
    except (ArgumentError, TypeError, ValueError) as exc:
        # The message of a URL parser may quote the URL: only the error's kind is shown.
        raise ConfigError(
            f"{setting}: the Prefect block '{ref[0]}/{ref[1]}' holds no valid SQLAlchemy URL "
            f"({type(exc).__name__})"
        ) from None
    return url.render_as_string(hide_password=False)

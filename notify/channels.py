"""One channel: a URL from ``alerts.yaml``, its secrets, its redacted name, one delivery.

A channel is any Apprise URL (``json://``, ``mailto://``, ``slack://`` ...: Apprise does
the sending) or ``prefect-block://<block-type-slug>/<name>``, a saved Prefect
``NotificationBlock`` (its own ``notify(body, subject)`` does the sending).

Errors (messages are redacted: no secret value, no password in a URL)::

    ChannelError
    ├── ChannelConfigError   the URL cannot work as written: unknown secret or placeholder,
    │                        not a URL Apprise knows, no such block, not a notification block
    │                        (not retried)
    └── ChannelSendError     the channel was tried and did not take the message (retried)
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import apprise
from pydantic import BaseModel, Secret, SecretStr

from okr_pipeline.connectors.base import SourceContext
from okr_pipeline.connectors.templating import render
from okr_pipeline.okr_core.names import secret_refs, unknown_name_message
from okr_pipeline.okr_core.redaction import Redactor, truncate

__all__ = [
    "PREFECT_BLOCK_SCHEME",
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "ChannelSendError",
    "check",
    "deliver",
    "describe_channel",
    "resolve_channel",
]

PREFECT_BLOCK_SCHEME = "prefect-block"

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_ERROR_LIMIT = 500


class ChannelError(Exception):
    """A channel could not deliver a message; the message is already redacted."""


class ChannelConfigError(ChannelError):
    """The channel cannot work as configured; trying again would not help."""


class ChannelSendError(ChannelError):
    """The channel was tried and failed; a later attempt may succeed."""


@dataclass(frozen=True)
class Channel:
    """A channel ready to send to.

    Attributes:
        template: The URL as written in ``alerts.yaml`` (placeholders, no secret values).
        url: The URL with its secrets filled in; never shown (not in ``repr``).
        name: The redacted name recorded with each alert (scheme and host).
        known_secrets: Every secret value of the run (a receiver may echo any of them).
    """

    template: str
    url: str = field(repr=False)
    name: str
    known_secrets: tuple[str, ...] = field(default=(), repr=False)

    def redact(self, text: str, *more_secrets: str) -> str:
        """Remove the run's secrets (and ``more_secrets``) and credential shapes from text.

        Args:
            text: A message about this channel.
            *more_secrets: Further values to remove, e.g. a Prefect block's credentials.

        Returns:
            The redacted text.
        """
        return Redactor([*self.known_secrets, *more_secrets])(text)


def resolve_channel(template: str, secrets: Mapping[str, SecretStr]) -> Channel:
    """Fill the ``${secret:NAME}`` placeholders of a channel URL.

    Secret values are URL-quoted, as Apprise unquotes every part of a URL (user,
    password, path, query, ``+Header=`` values).

    Args:
        template: A channel URL from a route.
        secrets: The settings' secrets by name.

    Returns:
        The channel.

    Raises:
        ChannelConfigError: A placeholder is not ``${secret:NAME}``, or names an unknown
            secret.
    """
    known = tuple(s.get_secret_value() for s in secrets.values())
    name = describe_channel(template)
    for match in _PLACEHOLDER.finditer(template):
        if not secret_refs(match[0]):
            raise ChannelConfigError(
                f"{name}: unknown placeholder {match[0]!r} in channel URL. Valid: ${{secret:NAME}}."
            )
    missing = sorted(secret_refs(template) - set(secrets))
    if missing:
        raise ChannelConfigError(
            f"{name}: channel URL: " + unknown_name_message("secret", missing[0], secrets)
        )
    values = {key: value.get_secret_value() for key, value in secrets.items()}
    # Only secret placeholders are left (checked above), so the context's times are never
    # read; render() wants one because HTTP sources also take ${as_of} and friends.
    now = datetime.now(UTC)
    ctx = SourceContext(as_of=now, cycle_start=now, cycle_end=now, kr_ref=name)
    url = render(template, ctx, values, encode=lambda s: quote(s, safe=""))
    return Channel(
        template=template,
        url=url,
        name=_name_of(template, url, Redactor(known)),
        known_secrets=known,
    )


def describe_channel(template: str) -> str:
    """The redacted name of a channel URL: scheme and host (and port).

    Examples: ``json://127.0.0.1:8123``, ``mailto://smtp.example.com``,
    ``prefect-block://slack-webhook/podcasts``. Placeholders are kept (they name a secret
    without revealing it); a literal password is dropped with the rest of the user info.

    Args:
        template: A channel URL as written in ``alerts.yaml``.

    Returns:
        The name; ``"<not a URL>"`` when there is no ``scheme://``.
    """
    return _name_of(template, None, Redactor())


def check(channel: Channel) -> None:
    """Validate a channel without sending anything (for dry runs).

    Args:
        channel: A resolved channel.

    Raises:
        ChannelConfigError: The URL is not one Apprise knows, or a malformed block URL.
    """
    if _scheme(channel.url) == PREFECT_BLOCK_SCHEME:
        _block_slug(channel)
    elif apprise.Apprise.instantiate(channel.url) is None:
        raise _not_apprise(channel)


def deliver(channel: Channel, title: str, body: str) -> None:
    """Send one message (Markdown body) to one channel, once.

    Args:
        channel: A resolved channel.
        title: The message title (e-mail subject).
        body: The message, Markdown.

    Raises:
        ChannelConfigError: The channel cannot work as configured.
        ChannelSendError: The channel did not take the message.
    """
    if _scheme(channel.url) == PREFECT_BLOCK_SCHEME:
        _deliver_block(channel, title, body)
    else:
        _deliver_apprise(channel, title, body)


def _deliver_apprise(channel: Channel, title: str, body: str) -> None:
    asset = apprise.AppriseAsset(app_id="OKR pipeline", app_desc="OKR alerts")
    client = apprise.Apprise(asset=asset)
    if not client.add(channel.url):
        raise _not_apprise(channel)
    # Apprise reports why it failed only through its logger (WARNING and up).
    capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
    with capture as captured:
        ok = client.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN)
        log = captured.getvalue()
    if not ok:
        reason = "; ".join(line for line in log.splitlines() if line.strip())
        raise ChannelSendError(_message(channel, reason or "Apprise reported a failure"))


def _deliver_block(channel: Channel, title: str, body: str) -> None:
    # Imported here: Prefect is heavy, and only block channels need it. Importing the
    # notifications module registers Prefect's own notification block types.
    import prefect.blocks.notifications  # noqa: F401
    from prefect.blocks.abstract import NotificationBlock, NotificationError
    from prefect.blocks.core import Block
    from prefect.utilities.asyncutils import run_coro_as_sync

    slug = _block_slug(channel)
    try:
        block = Block.load(slug)
    except ValueError as exc:  # "Unable to find block document named ..."
        raise ChannelConfigError(_message(channel, f"no Prefect block {slug!r}: {exc}")) from exc
    except Exception as exc:  # the API is down or slow: worth another try
        raise ChannelSendError(_message(channel, f"loading block {slug!r}: {exc!r}")) from exc
    if not isinstance(block, NotificationBlock):
        raise ChannelConfigError(
            f"{channel.name}: Prefect block {slug!r} is a {type(block).__name__}, not a "
            "notification block. Use a block with a notify() method, e.g. slack-webhook, "
            "custom-webhook, ms-teams-webhook."
        )
    block_secrets = _block_secrets(block)
    try:
        # Apprise-based blocks only log a failure unless asked to raise.
        with block.raise_on_failure():
            sent = block.notify(body, subject=title)
            # Prefect's blocks answer synchronously here; a third-party block may only
            # have ``async def notify``.
            if inspect.isawaitable(sent):
                run_coro_as_sync(sent)
    except NotificationError as exc:
        reason = exc.log.strip() or "the block reported a failure"
        raise ChannelSendError(_message(channel, reason, *block_secrets)) from exc
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise ChannelSendError(_message(channel, reason, *block_secrets)) from exc


def _block_slug(channel: Channel) -> str:
    parts = [p for p in urlsplit(channel.url).path.split("/") if p]
    block_type = urlsplit(channel.url).netloc
    if not block_type or len(parts) != 1:
        raise ChannelConfigError(
            f"{channel.name}: a Prefect block channel is "
            "prefect-block://<block-type-slug>/<block-name>, e.g. "
            "prefect-block://slack-webhook/podcasts."
        )
    return f"{block_type}/{parts[0]}"


def _block_secrets(block: BaseModel) -> list[str]:
    # A block keeps its own credentials (a webhook URL with a token, SecretDict values);
    # an error about the block must not show them.
    values: list[str] = []
    for name in type(block).model_fields:
        value = getattr(block, name, None)
        if isinstance(value, SecretStr | Secret):
            values.extend(_strings(value.get_secret_value()))
    return values


def _strings(value: object) -> list[str]:
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value not in (None, "") else []


def _not_apprise(channel: Channel) -> ChannelConfigError:
    return ChannelConfigError(
        f"{channel.name}: not a URL Apprise can send to (unknown scheme or missing parts). "
        "See https://github.com/caronc/apprise/wiki for the URL of each service, or use "
        "prefect-block://<block-type-slug>/<block-name>."
    )


def _message(channel: Channel, reason: str, *more_secrets: str) -> str:
    # One line: records are listed one per line (okr alerts, the run summary).
    reason = truncate(" ".join(reason.split()), _ERROR_LIMIT)
    return channel.redact(f"{channel.name}: {reason}", *more_secrets)


def _scheme(url: str) -> str:
    match = _SCHEME.match(url.strip())
    return match["scheme"].lower() if match else ""


def _host(url: str) -> str:
    match = _SCHEME.match(url.strip())
    if match is None:
        return ""
    netloc = re.split(r"[/?#]", match["rest"], maxsplit=1)[0]
    return netloc.rpartition("@")[2]


def _name_of(template: str, url: str | None, redact: Redactor) -> str:
    scheme = _scheme(template)
    if not scheme:
        return "<not a URL>"
    if scheme == PREFECT_BLOCK_SCHEME:
        path = re.split(r"[?#]", template.strip().split("://", 1)[1], maxsplit=1)[0]
        return redact(f"{scheme}://{path.strip('/')}")
    host = _host(template)
    if url is not None and "${" not in host:
        # Some services put a token where the host goes (slack://TokenA/..., tgram://bot
        # token/...): Apprise's privacy URL knows which and masks it.
        plugin = apprise.Apprise.instantiate(url)
        if plugin is not None:
            host = _host(plugin.url(privacy=True)) or host  # type: ignore[no-untyped-call]
    return redact(f"{scheme}://{host}")

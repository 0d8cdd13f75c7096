"""Writes from the dashboard: check-ins and notes, through :mod:`okr_pipeline.run.checkin`.

Both the form and the JSON API land here once the caller is authenticated: the value is
parsed and checked by ``run.checkin`` (a clear one-line ``CheckinError`` and nothing
changed when it is wrong), which scores it like any measurement.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.run import checkin
from okr_pipeline.web.auth import Credentials

__all__ = [
    "MAX_FORM_BYTES",
    "READ_ONLY_MESSAGE",
    "WriteError",
    "add_note",
    "credentials_from_header",
    "parse_as_of",
    "parse_form",
    "record_checkin",
]

MAX_FORM_BYTES = 64 * 1024
READ_ONLY_MESSAGE = (
    "This dashboard is read-only. To allow check-ins and notes, run 'okr ui hash' and put "
    "the hash it prints in the project's .env as OKR_UI__TOKEN_HASH=... (or one user per "
    "line as OKR_UI__USERS__<NAME>=...), then restart 'okr ui'."
)


class WriteError(Exception):
    """A write refused, with the HTTP status to answer and a one-line message.

    Args:
        status: 400 (bad value), 401/403 (not allowed), 404 (unknown KR), 413, 503.
        message: What went wrong and how to fix it.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a mapping (last value wins).

    Raises:
        WriteError: 413 for a body over 64 KiB, 400 for one that is not UTF-8.
    """
    if len(body) > MAX_FORM_BYTES:
        raise WriteError(413, "The form is too large.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WriteError(400, "The form is not UTF-8 text.") from exc
    fields = parse_qs(text, keep_blank_values=True, max_num_fields=50)
    return {name: values[-1] for name, values in fields.items()}


def credentials_from_header(header: str | None) -> Credentials:
    """The credentials of an ``Authorization`` header: ``Bearer <token>`` or Basic."""
    if not header:
        return Credentials()
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return Credentials(token=value.strip())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return Credentials()
        user, sep, password = decoded.partition(":")
        return Credentials(user=user, password=password) if sep else Credentials()
    return Credentials()


def parse_as_of(text: str | None) -> datetime | None:
    """An as-of typed in a form: empty for now; ISO 8601 date or time; naive means UTC.

    Raises:
        WriteError: 400 when it is not a date or time.
    """
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise WriteError(
            400, f"As-of '{raw[:40]}' is not a date or time; write e.g. 2026-11-20T09:00Z."
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class WriteResult:
    """What a write stored."""

    value: str | None
    as_of: datetime | None
    status: str | None


def record_checkin(
    settings: Settings,
    ref: str,
    value: str,
    *,
    author: str,
    note: str | None,
    as_of: datetime | None,
    now: datetime,
) -> WriteResult:
    """Record a check-in (``run.checkin.record_checkin``).

    Raises:
        WriteError: 400 with the ``CheckinError`` message (not a number, unknown KR,
            as-of outside the cycle, a KR that is not manual); nothing is stored then.
            Other errors (the store unreachable) pass through.
    """
    try:
        result = checkin.record_checkin(
            settings, ref, value.strip(), author=author, note=note or None, as_of=as_of, now=now
        )
    except checkin.CheckinError as exc:
        raise WriteError(400, str(exc)) from exc
    return WriteResult(value=str(result.value), as_of=result.as_of, status=result.status)


def add_note(
    settings: Settings,
    ref: str,
    text: str,
    *,
    author: str,
    as_of: datetime | None,
    now: datetime,
) -> WriteResult:
    """Add a note to a KR (``run.checkin.add_note``).

    Raises:
        WriteError: 400 with the ``CheckinError`` message; nothing is stored then.
    """
    if not text.strip():
        raise WriteError(400, "The note is empty; write what happened.")
    try:
        result = checkin.add_note(settings, ref, text.strip(), author=author, as_of=as_of, now=now)
    except checkin.CheckinError as exc:
        raise WriteError(400, str(exc)) from exc
    return WriteResult(value=None, as_of=result.as_of, status=None)

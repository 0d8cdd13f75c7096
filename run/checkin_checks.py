"""What a check-in or a note must be before anything is written, and which KR it is for.

Every check here raises :class:`CheckinError` with one line saying what was given and how
to fix it; :mod:`okr_pipeline.run.checkin` runs them all before it writes, so a refused
check-in or note leaves the store exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from okr_pipeline.connectors.values import (
    MAX_ABS_VALUE,
    NotANumberError,
    OutOfRangeError,
    describe,
    to_decimal,
)
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.loader import fingerprint
from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_core.words import suggest
from okr_pipeline.okr_store.models import AUTHOR_LENGTH
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.definitions import load_definitions
from okr_pipeline.run.preflight import FUTURE_TOLERANCE

__all__ = [
    "NOTE_LENGTH",
    "CheckinError",
    "CheckinTarget",
    "check_as_of",
    "check_author",
    "check_note",
    "check_within_cycle",
    "find_kr",
    "is_synced",
    "kr_targets",
    "parse_value",
]

#: Longest note kept with a check-in or on its own, in characters.
NOTE_LENGTH = 2000


class CheckinError(ConfigError):
    """A check-in or a note that cannot be taken: a one-line message; the store is unchanged."""


@dataclass(frozen=True)
class CheckinTarget:
    """A KR as the OKR files (or the store synced from them) define it, for the checks."""

    ref: str
    kr_key: str
    cycle: str
    start: datetime
    end: datetime  # exclusive
    source_type: str
    unit: str
    kind: str


def check_author(author: str) -> str:
    """The author as one line.

    Raises:
        CheckinError: Empty, or longer than the store keeps.
    """
    name = " ".join(author.split())  # one line, whatever was typed
    if not name:
        raise CheckinError("a check-in needs an author: pass --author NAME or set OKR_AUTHOR")
    if len(name) > AUTHOR_LENGTH:
        raise CheckinError(f"the author is {len(name)} characters long; at most {AUTHOR_LENGTH}")
    return name


def check_note(note: str | None, *, required: bool) -> str | None:
    """The note without surrounding blanks; None for none (unless ``required``).

    Raises:
        CheckinError: Empty while required, or longer than :data:`NOTE_LENGTH`.
    """
    text = (note or "").strip()
    if not text:
        if required:
            raise CheckinError("the note is empty: say what happened, e.g. 'campaign paused'")
        return None
    if len(text) > NOTE_LENGTH:
        raise CheckinError(f"the note is {len(text)} characters long; at most {NOTE_LENGTH}")
    return text


def check_as_of(as_of: datetime | None, now: datetime) -> datetime:
    """The as-of in UTC (``now`` when None; naive means UTC).

    Raises:
        CheckinError: It is in the future (beyond a minute of clock skew).
    """
    when = now if as_of is None else as_of
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    if when > now + FUTURE_TOLERANCE:
        raise CheckinError(
            f"as-of {_time(when)} is in the future (now {_time(now)}): a check-in records "
            "a value already known"
        )
    return when


def parse_value(value: str, target: CheckinTarget) -> Decimal:
    """The value as typed, exactly, with the product's range (``connectors.values``).

    Raises:
        CheckinError: Not a finite number, or out of range; the message shows what was given.
    """
    hint = "1 when done, 0 when not" if target.kind == "milestone" else "e.g. 42 or -3.5"
    try:
        number = to_decimal(value)
    except OutOfRangeError as exc:
        raise CheckinError(
            f"value {describe(value)} for {target.ref} is out of the range this product "
            f"stores (|value| < {MAX_ABS_VALUE:.0e})"
        ) from exc
    except NotANumberError as exc:
        raise CheckinError(
            f"value {describe(value)} for {target.ref} is not a number; give digits, {hint}"
        ) from exc
    if number is None:  # "nan"
        raise CheckinError(
            f"value {describe(value)} for {target.ref} is not a number; give digits, {hint}"
        )
    return number


def check_within_cycle(when: datetime, target: CheckinTarget) -> None:
    """Refuse an as-of outside the KR's cycle.

    Raises:
        CheckinError: Naming the cycle and its dates.
    """
    if not target.start <= when < target.end:
        raise CheckinError(
            f"as-of {_time(when)} is outside {target.ref}'s cycle {target.cycle} "
            f"({_span(target.start, target.end)}); give an as-of within it"
        )


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(start: datetime, end: datetime) -> str:
    if start.time() == end.time() == datetime.min.time():
        return f"{start:%Y-%m-%d} to {end - timedelta(days=1):%Y-%m-%d}"
    return f"{_time(start)} to {_time(end)}, end excluded"


def is_synced(settings: Settings, store: Store) -> bool:
    """True when the store holds the OKR files as they are now."""
    return store.definitions_fingerprint() == fingerprint(settings.resolved_okr_path())


def kr_targets(settings: Settings, store: Store, synced: bool) -> list[CheckinTarget]:
    """Every active KR: from the store when it holds the files as they are, else the files.

    Reading the files writes nothing: a KR new in them is found before any run synced it.
    """
    if synced:
        return [
            CheckinTarget(k.ref, k.kr_key, k.cycle, k.cycle_start, k.cycle_end, k.source_type,
                    k.unit, k.kind)
            for k in store.active_key_results()
        ]  # fmt: skip
    return [
        CheckinTarget(
            f"{objective.id}/{kr.id}",
            kr.id,
            cycle.name,
            cycle.start_at(),
            cycle.end_at(),
            str(kr.source.get("type", "")),
            kr.unit,
            kr.effective_kind,
        )
        for cycle, objective, kr in load_definitions(settings).key_results()
    ]


def find_kr(ref: str, targets: Sequence[CheckinTarget], when: datetime) -> CheckinTarget:
    """The KR ``ref`` names; of several cycles, the one whose cycle holds ``when``.

    Args:
        ref: ``objective/kr``, or a KR id alone where unique.
        targets: Every active KR.
        when: The as-of of the check-in or note.

    Raises:
        CheckinError: No KR by that name (with :func:`okr_core.words.suggest`'s hint), or a bare id
            in several objectives.
    """
    name = ref.strip()
    matches = [t for t in targets if t.ref == name]
    if not matches:
        matches = [t for t in targets if t.kr_key == name]
        refs = sorted({t.ref for t in matches})
        if len(refs) > 1:
            raise CheckinError(
                f"KR id {name!r} is in several objectives ({', '.join(refs)}); "
                "name one as objective/kr"
            )
    if not matches:
        hint = suggest(name, sorted({t.ref for t in targets})) or " 'okr status' lists the KRs."
        raise CheckinError(f"no KR named {name!r}.{hint}")
    holding = [t for t in matches if t.start <= when < t.end]
    if holding:
        return holding[0]
    return max(matches, key=lambda t: t.start)  # its cycle is named in the error

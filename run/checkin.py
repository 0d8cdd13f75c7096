"""Check-ins and notes: values and context people enter by hand, scored like measured values.

:func:`record_checkin` stores a value for a ``manual`` KR (``okr checkin``, the dashboard's
form) by running the Prefect-free pipeline (:func:`okr_pipeline.run.update.run_update`,
trigger ``checkin``) for that KR alone: the value is written as the run's measurement of
kind ``checkin`` with its author and note, in the same transaction as its evaluation, then
later as-ofs are evaluated again and the alert step runs, exactly as for a fetched value
(see ``run/manual.py`` for what scheduled runs do with it afterwards).

:func:`add_note` puts a note on any KR, manual or measured ("campaign paused this week").

Everything is checked before anything is written: a value that is not a number, a KR that
does not exist (with "did you mean"), an as-of outside the KR's cycle or in the future, a
value for a KR that is not manual, an empty author or note. Each is a :class:`CheckinError`
with a one-line message, and the store is left exactly as it was.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
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
from okr_pipeline.okr_store.models import AUTHOR_LENGTH
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.definitions import load_definitions
from okr_pipeline.run.manual import MANUAL, Checkin
from okr_pipeline.run.preflight import FUTURE_TOLERANCE
from okr_pipeline.run.record import open_store
from okr_pipeline.run.update import RunRequest, Steps, run_update, utcnow

__all__ = [
    "NOTE_LENGTH",
    "CheckinError",
    "CheckinResult",
    "NoteResult",
    "add_note",
    "record_checkin",
]

#: Longest note kept with a check-in or on its own, in characters.
NOTE_LENGTH = 2000


class CheckinError(ConfigError):
    """A check-in or a note that cannot be taken: a one-line message; the store is unchanged."""


@dataclass(frozen=True)
class CheckinResult:
    """A check-in recorded and scored.

    Attributes:
        ref: The KR, ``objective/kr``.
        cycle: Its cycle.
        kr_id: Its id in the store.
        as_of: The time the value describes.
        value: The value, exact.
        author: Who entered it.
        note: Its note, or None.
        status: The KR's status as of ``as_of`` with this value.
        score: Its score then, or None.
        reason: Why it has that status.
        previous_status: Its status as of ``as_of`` before the check-in (None: never
            evaluated).
        run_id: The run that stored and scored it.
    """

    ref: str
    cycle: str
    kr_id: int
    as_of: datetime
    value: Decimal
    author: str
    note: str | None
    status: str
    score: float | None
    reason: str
    previous_status: str | None
    run_id: int | None


@dataclass(frozen=True)
class NoteResult:
    """A note recorded on a KR.

    Attributes:
        id: The note's id in the store.
        ref: The KR, ``objective/kr``.
        cycle: Its cycle.
        kr_id: Its id in the store.
        as_of: The time the note is about.
        created_at: When it was written.
        author: Who wrote it.
        text: The note.
    """

    id: int
    ref: str
    cycle: str
    kr_id: int
    as_of: datetime
    created_at: datetime
    author: str
    text: str


@dataclass(frozen=True)
class _Target:
    """A KR as the OKR files (or the store synced from them) define it."""

    ref: str
    kr_key: str
    cycle: str
    start: datetime
    end: datetime  # exclusive
    source_type: str
    unit: str
    kind: str


def record_checkin(
    settings: Settings,
    ref: str,
    value: str,
    *,
    author: str,
    note: str | None = None,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> CheckinResult:
    """Record a value for a manual KR and score it at once, like a measured value.

    Args:
        settings: The project's settings.
        ref: The KR: ``objective/kr``, or its id alone where unique.
        value: The value as typed (``"42"``, ``"-3.5"``); kept exactly.
        author: Who enters it (recorded with it).
        note: Why, or what it is based on.
        as_of: The time the value describes (default: now); naive means UTC. Must lie
            within the KR's cycle and not in the future.
        now: The current time (default: the system clock).

    Returns:
        The check-in and the status, score and reason it gives the KR.

    Raises:
        CheckinError: The value, the KR, the as-of, the author or the note cannot be
            taken; nothing is stored.
        ConfigError: The OKR files or settings have a problem (as for ``okr run``).
    """
    clock = _clock(now)
    moment = clock()
    who, text = _author(author), _note(note, required=False)
    when = _as_of(as_of, moment)
    store = open_store(settings)
    try:
        synced = _synced(settings, store)
        target = _resolve(ref, _targets(settings, store, synced), when)
        if target.source_type != MANUAL:
            raise CheckinError(
                f"{target.ref} is measured by its '{target.source_type}' source, so it takes "
                f"no value by hand: add context with 'okr note {target.ref} TEXT', or declare "
                "'source: {type: manual}' to check its values in"
            )
        number = _number(value, target)
        _within_cycle(when, target)
        previous = _status_at(store, target, when) if synced else None
    finally:
        store.close()
    checkin = Checkin(ref=target.ref, cycle=target.cycle, value=number, author=who, note=text)
    summary = run_update(
        RunRequest(project_dir=settings.project_dir, as_of=when, checkin=checkin),
        # A check-in run fetches nothing, so Prefect-block connections need not be read.
        steps=Steps(resolve_settings=lambda s: s),
        settings=settings,
        clock=clock,
    )
    row = summary.rows[0]
    store = open_store(settings)
    try:
        kr_id = _kr_id(store, target)
    finally:
        store.close()
    return CheckinResult(
        ref=target.ref,
        cycle=target.cycle,
        kr_id=kr_id,
        as_of=when,
        value=number,
        author=who,
        note=text,
        status=row["status"],
        score=row["score"],
        reason=row["reason"],
        previous_status=previous,
        run_id=summary.run_id,
    )


def add_note(
    settings: Settings,
    ref: str,
    text: str,
    *,
    author: str,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> NoteResult:
    """Put a note on a KR, manual or measured ("campaign paused this week").

    Args:
        settings: The project's settings.
        ref: The KR: ``objective/kr``, or its id alone where unique.
        text: The note.
        author: Who writes it.
        as_of: The time it is about (default: now); naive means UTC; within the KR's cycle.
        now: The current time (default: the system clock).

    Returns:
        The note as stored.

    Raises:
        CheckinError: The KR, the as-of, the author or the text cannot be taken; nothing
            is stored.
        ConfigError: The OKR files or settings have a problem.
    """
    moment = _clock(now)()
    who, body = _author(author), _note(text, required=True)
    assert body is not None
    when = _as_of(as_of, moment)
    store = open_store(settings)
    try:
        synced = _synced(settings, store)
        target = _resolve(ref, _targets(settings, store, synced), when)
        _within_cycle(when, target)
        if not synced:  # as a run would: the KR may be new in the files
            store.sync_definitions(load_definitions(settings))
        row = store.add_note(_kr_id(store, target), when, body, who, moment)
    finally:
        store.close()
    return NoteResult(
        id=row.id,
        ref=target.ref,
        cycle=target.cycle,
        kr_id=row.kr_id,
        as_of=row.as_of,
        created_at=row.created_at,
        author=row.author,
        text=row.text,
    )


# -- checks ----------------------------------------------------------------------------


def _clock(now: datetime | None) -> Callable[[], datetime]:
    if now is None:
        return utcnow
    fixed = now if now.tzinfo else now.replace(tzinfo=UTC)
    return lambda: fixed


def _author(author: str) -> str:
    name = " ".join(author.split())  # one line, whatever was typed
    if not name:
        raise CheckinError("a check-in needs an author: pass --author NAME or set OKR_AUTHOR")
    if len(name) > AUTHOR_LENGTH:
        raise CheckinError(f"the author is {len(name)} characters long; at most {AUTHOR_LENGTH}")
    return name


def _note(note: str | None, *, required: bool) -> str | None:
    text = (note or "").strip()
    if not text:
        if required:
            raise CheckinError("the note is empty: say what happened, e.g. 'campaign paused'")
        return None
    if len(text) > NOTE_LENGTH:
        raise CheckinError(f"the note is {len(text)} characters long; at most {NOTE_LENGTH}")
    return text


def _as_of(as_of: datetime | None, now: datetime) -> datetime:
    when = now if as_of is None else as_of
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    if when > now + FUTURE_TOLERANCE:
        raise CheckinError(
            f"as-of {_time(when)} is in the future (now {_time(now)}): a check-in records "
            "a value already known"
        )
    return when


def _number(value: str, target: _Target) -> Decimal:
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


def _within_cycle(when: datetime, target: _Target) -> None:
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


# -- the KR ----------------------------------------------------------------------------


def _synced(settings: Settings, store: Store) -> bool:
    return store.definitions_fingerprint() == fingerprint(settings.resolved_okr_path())


def _targets(settings: Settings, store: Store, synced: bool) -> list[_Target]:
    """Every active KR: from the store when it holds the files as they are, else the files."""
    if synced:
        return [
            _Target(k.ref, k.kr_key, k.cycle, k.cycle_start, k.cycle_end, k.source_type,
                    k.unit, k.kind)
            for k in store.active_key_results()
        ]  # fmt: skip
    return [
        _Target(
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


def _resolve(ref: str, targets: Sequence[_Target], when: datetime) -> _Target:
    """The KR ``ref`` names; of several cycles, the one whose cycle holds ``when``."""
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
        known = sorted({t.ref for t in targets})
        close = difflib.get_close_matches(name, known, n=1) or difflib.get_close_matches(
            name, sorted({t.kr_key for t in targets}), n=1
        )
        hint = f"did you mean {close[0]!r}?" if close else "'okr status' lists the KRs"
        raise CheckinError(f"no KR named {name!r}; {hint}")
    holding = [t for t in matches if t.start <= when < t.end]
    if holding:
        return holding[0]
    return max(matches, key=lambda t: t.start)  # its cycle is named in the error


def _kr_id(store: Store, target: _Target) -> int:
    for kr in store.active_key_results():
        if (kr.ref, kr.cycle) == (target.ref, target.cycle):
            return kr.kr_id
    raise CheckinError(f"{target.ref} is not in the store; run 'okr run' once")  # pragma: no cover


def _status_at(store: Store, target: _Target, when: datetime) -> str | None:
    for row in store.latest_status(target.cycle, at=when):
        if row.ref == target.ref:
            return row.status
    return None

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
with a one-line message (``run/checkin_checks.py``), and the store is left exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from okr_pipeline.okr_core.settings import Settings
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.checkin_checks import (
    NOTE_LENGTH,
    CheckinError,
    CheckinTarget,
    check_as_of,
    check_author,
    check_note,
    check_within_cycle,
    find_kr,
    is_synced,
    kr_targets,
    parse_value,
)
from okr_pipeline.run.definitions import load_definitions
from okr_pipeline.run.manual import MANUAL, Checkin
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
    who, text = check_author(author), check_note(note, required=False)
    when = check_as_of(as_of, moment)
    store = open_store(settings)
    try:
        synced = is_synced(settings, store)
        target = find_kr(ref, kr_targets(settings, store, synced), when)
        if target.source_type != MANUAL:
            raise CheckinError(
                f"{target.ref} is measured by its '{target.source_type}' source, so it takes "
                f"no value by hand: add context with 'okr note {target.ref} TEXT', or declare "
                "'source: {type: manual}' to check its values in"
            )
        number = parse_value(value, target)
        check_within_cycle(when, target)
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
    who, body = check_author(author), check_note(text, required=True)
    assert body is not None
    when = check_as_of(as_of, moment)
    store = open_store(settings)
    try:
        synced = is_synced(settings, store)
        target = find_kr(ref, kr_targets(settings, store, synced), when)
        check_within_cycle(when, target)
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


# -- the clock -------------------------------------------------------------------------


def _clock(now: datetime | None) -> Callable[[], datetime]:
    if now is None:
        return utcnow
    fixed = now if now.tzinfo else now.replace(tzinfo=UTC)
    return lambda: fixed


# -- the KR in the store -------------------------------------------------------------


def _kr_id(store: Store, target: CheckinTarget) -> int:
    for kr in store.active_key_results():
        if (kr.ref, kr.cycle) == (target.ref, target.cycle):
            return kr.kr_id
    raise CheckinError(f"{target.ref} is not in the store; run 'okr run' once")  # pragma: no cover


def _status_at(store: Store, target: CheckinTarget, when: datetime) -> str | None:
    for row in store.latest_status(target.cycle, at=when):
        if row.ref == target.ref:
            return row.status
    return None

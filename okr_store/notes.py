"""Notes on KRs: context a person adds at an as-of ("campaign paused this week").

Each function takes a connection; :class:`okr_store.store.Store` owns the transactions.
A note changes no value and no status; it is shown beside the KR's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from okr_pipeline.okr_store.models import KrNote
from okr_pipeline.okr_store.queries import IN_CHUNK
from okr_pipeline.okr_store.records import NoteRow


def add_note(
    conn: sa.Connection, kr_id: int, as_of: datetime, text: str, author: str, created_at: datetime
) -> NoteRow:
    """Insert a note and return it as stored.

    Raises:
        ValueError: an empty text or author.
        sqlalchemy.exc.IntegrityError: no such KR.
    """
    if not text.strip():
        raise ValueError("a note needs a text")
    if not author.strip():
        raise ValueError("a note needs an author")
    result = conn.execute(
        sa.insert(KrNote).values(
            kr_id=kr_id, as_of=as_of, created_at=created_at, author=author, text=text
        )
    )
    note_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert isinstance(note_id, int)
    row = conn.execute(sa.select(KrNote.__table__).where(KrNote.id == note_id)).one()
    return NoteRow(**row._asdict())


def notes(
    conn: sa.Connection,
    kr_ids: Iterable[int] | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[NoteRow]:
    """Return notes by KR, then as-of, then as written.

    Args:
        conn: connection.
        kr_ids: only these KRs; every note if None.
        since: only notes as of this time or later.
        until: only notes as of this time or earlier.
    """
    table = KrNote.__table__

    def select() -> sa.Select[tuple[int, int, datetime, datetime, str, str]]:
        stmt = sa.select(
            table.c.id, table.c.kr_id, table.c.as_of, table.c.created_at, table.c.author,
            table.c.text,
        )  # fmt: skip
        if since is not None:
            stmt = stmt.where(table.c.as_of >= since)
        if until is not None:
            stmt = stmt.where(table.c.as_of <= until)
        return stmt.order_by(table.c.kr_id, table.c.as_of, table.c.id)

    if kr_ids is None:
        return [NoteRow(**row._asdict()) for row in conn.execute(select())]
    ids = sorted(set(kr_ids))
    rows: list[NoteRow] = []
    for start in range(0, len(ids), IN_CHUNK):
        stmt = select().where(table.c.kr_id.in_(ids[start : start + IN_CHUNK]))
        rows.extend(NoteRow(**row._asdict()) for row in conn.execute(stmt))
    return rows

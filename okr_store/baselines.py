"""The measured baseline of a ``baseline: auto`` KR, stored once with the target it resolves.

A KR declared with ``baseline: auto`` starts without one: the first run of its cycle
measures it. A relative target (``+10%``) becomes absolute only then, so the baseline and
the resolved target are written together; a baseline already stored is never replaced.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from okr_pipeline.okr_store.models import KeyResult
from okr_pipeline.okr_store.sync import resolved_target


def set_auto_baseline(conn: sa.Connection, kr_id: int, value: Decimal) -> bool:
    """Store ``value`` as the KR's baseline unless it has one; see :meth:`Store.set_auto_baseline`.

    Returns:
        True if stored, False if the KR already had its baseline.

    Raises:
        KeyError: no such KR.
        ValueError: the KR's baseline is not ``auto``.
    """
    row = conn.execute(
        sa.select(
            KeyResult.baseline_auto, KeyResult.baseline, KeyResult.kind, KeyResult.target
        ).where(KeyResult.id == kr_id)
    ).one_or_none()
    if row is None:
        raise KeyError(f"no key result with id {kr_id}")
    if not row.baseline_auto:
        raise ValueError(f"key result {kr_id} has a declared baseline, not 'auto'")
    if row.baseline is not None:
        return False
    written: str | None = row.target
    target: Decimal | str | None = written
    if written is not None and not written.startswith(("+", "-")):
        target = Decimal(written)
    conn.execute(
        sa.update(KeyResult)
        .where(KeyResult.id == kr_id)
        .values(baseline=value, target_value=resolved_target(row.kind, target, value))
    )
    return True

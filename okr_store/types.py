"""Column types that keep values exact across PostgreSQL and SQLite.

Two things go wrong by default and both would corrupt a KR's history silently:

* SQLite has no decimal type. ``Numeric`` there goes through ``float`` (and SQLAlchemy warns),
  so ``0.1 + 0.2`` comes back as ``0.30000000000000004``. :class:`ExactDecimal` stores the
  decimal's text on SQLite (a ``VARCHAR`` column, i.e. TEXT affinity, so SQLite never
  converts it) and an unbounded ``NUMERIC`` on PostgreSQL.
* SQLite has no time zone. An aware datetime is written without its offset and read back
  naive. :class:`UtcDateTime` accepts aware datetimes only, writes them as UTC, and always
  returns aware UTC datetimes, whatever the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

#: Room for any value a metric realistically has (and far more than PostgreSQL's float).
DECIMAL_TEXT_LENGTH = 80


class ExactDecimal(TypeDecorator[Decimal]):
    """A :class:`~decimal.Decimal` stored without rounding on every backend.

    PostgreSQL: ``NUMERIC`` without precision (exact, arbitrary size). Other backends: the
    decimal's plain (non-scientific) text in a ``VARCHAR``. Floats are refused on purpose:
    a float has already lost the exact value, and accepting it would hide that.
    """

    impl = sa.String(DECIMAL_TEXT_LENGTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Pick NUMERIC on PostgreSQL, text elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Numeric(asdecimal=True))
        return dialect.type_descriptor(sa.String(DECIMAL_TEXT_LENGTH))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Validate and convert a Python value for the database.

        Raises:
            TypeError: for a float or anything but Decimal/int.
            ValueError: for NaN or infinity.
        """
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(
                f"ExactDecimal needs a Decimal or int, got {type(value).__name__} {value!r}; "
                "convert with Decimal(str(x)) where the value is produced"
            )
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(f"ExactDecimal cannot store {number}")
        if dialect.name == "postgresql":
            return number
        return format(number, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Return the stored value as a Decimal (or None)."""
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC, always returned aware in UTC.

    Naive datetimes are refused: guessing their zone is how off-by-hours bugs start.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC on backends without zones).

        Raises:
            TypeError: if the value is not a datetime.
            ValueError: if the datetime is naive.
        """
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(f"naive datetime {value.isoformat()}; pass an aware datetime")
        utc = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return utc
        # SQLite would drop the offset anyway; dropping it here after converting to UTC keeps
        # every stored value in one fixed-width UTC format, so text ordering is time ordering.
        return utc.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        # Aggregates over SQLite text can lose the type.
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)

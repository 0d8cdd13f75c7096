"""Pydantic models of the OKR definition format (YAML), ``extra="forbid"`` everywhere.

One file holds one cycle and its objectives::

    cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31, timezone: Europe/Berlin}
    objectives:
      - id: podcast-discovery
        title: Make podcast discovery delightful
        owner: maya@example.com
        key_results:
          - id: first-time-listeners
            title: First-time podcast listeners +20%
            baseline: auto
            target: "+20%"
            source: {type: sql, connection: warehouse, query: "SELECT ..."}

Numbers become :class:`~decimal.Decimal` exactly as written (YAML floats through ``str()``),
so ``0.1`` stays ``0.1``. A KR's ``kind`` is inferred when omitted: ``increase`` if the
target is above the baseline, ``decrease`` if below. A quoted target starting with a sign
(``"+20%"``, ``"-15%"``, ``"+5"``, ``"-2.5"``) is relative to the baseline; see
:func:`resolve_target`.

Checks that span several fields raise :class:`FieldError`, which names the field at fault
so the loader can point at the right line.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from okr_pipeline.okr_core.alerting.model import AlertPolicyOverride
from okr_pipeline.okr_core.scoring import KrSpec
from okr_pipeline.okr_core.targets import (
    is_zero_change,
    parse_baseline,
    parse_number,
    parse_target,
    resolve_target,
)

__all__ = [
    "DEFAULT_SCHEDULE",
    "ID_PATTERN",
    "CycleDef",
    "FieldError",
    "KeyResultDef",
    "KrKind",
    "ObjectiveDef",
    "ObjectiveType",
    "OkrFileDef",
    "resolve_target",
]

KrKind = Literal["increase", "decrease", "at_least", "at_most", "milestone"]
ObjectiveType = Literal["aspirational", "committed"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DEFAULT_SCHEDULE = "0 * * * *"
# OKR practice (PRODUCT.md): an objective has 2-5 key results. Outside that is a warning.
RECOMMENDED_KR_COUNT = (2, 5)
SUCCESS_LEVELS: dict[str, float] = {"aspirational": 0.7, "committed": 1.0}


class FieldError(ValueError):
    """A cross-field check failed; ``path`` names the field at fault, relative to the model.

    Raised inside model validators. Pydantic keeps the exception in the error's
    ``ctx["error"]``, which is how the loader turns ``path`` into a location and a line.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@lru_cache(maxsize=1024)
def _check_cron(expr: str) -> str | None:
    # Cached: 10,000 KRs mostly share a handful of schedules.
    if len(expr.split()) != 5:
        return f"schedule {expr!r} must have 5 cron fields (minute hour day month weekday)"
    try:
        CronSim(expr, datetime(2000, 1, 1))
    except CronSimError as exc:
        return f"schedule {expr!r} is not a valid cron expression: {exc}"
    return None


MIN_YEAR, MAX_YEAR = 1900, 9000


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


Id = Annotated[str, Field(min_length=1, max_length=200, pattern=ID_PATTERN)]
Text = Annotated[str, Field(min_length=1)]


class CycleDef(_Model):
    """An OKR cycle (usually a quarter); ``end`` is the last day, inclusive."""

    name: Text
    start: date
    end: date
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            _zone(value)
        except ZoneInfoNotFoundError:
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name like 'UTC' or 'Europe/Berlin'"
            ) from None
        except (ValueError, OSError):
            # zoneinfo looks the name up as a file: a folder ('Europe'), a name too long
            # for the file system or a malformed one fails with these instead.
            raise ValueError(
                f"timezone {value[:60]!r} is not a time zone; use an IANA name such as "
                "'Europe/Paris' or 'UTC'"
            ) from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _plausible_year(cls, value: date) -> date:
        # The cycle's bounds become datetimes in its time zone: years near 1 or 9999
        # overflow there, long after the file was read.
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(
                f"{value} is out of range; cycle dates lie between {MIN_YEAR} and {MAX_YEAR}"
            )
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: date, info: ValidationInfo) -> date:
        # A field validator (not a model one) so it still runs when another field fails.
        start = info.data.get("start")
        if isinstance(start, date) and value < start:
            raise ValueError(f"cycle ends ({value}) before it starts ({start})")
        return value

    def start_at(self) -> datetime:
        """Start of the cycle: ``start`` at 00:00 in the cycle's timezone, as aware UTC."""
        return datetime.combine(self.start, time(0), _zone(self.timezone)).astimezone(UTC)

    def end_at(self) -> datetime:
        """End of the cycle: the day after ``end`` at 00:00 in its timezone, as aware UTC."""
        day_after = self.end + timedelta(days=1)
        return datetime.combine(day_after, time(0), _zone(self.timezone)).astimezone(UTC)


class KeyResultDef(_Model):
    """A key result: a measurable outcome with a baseline, a target and a metric source."""

    id: Id
    title: Text
    description: str = ""
    unit: str = ""
    kind: KrKind | None = None
    baseline: Annotated[Decimal | Literal["auto"] | None, BeforeValidator(parse_baseline)] = None
    target: Annotated[Decimal | str | None, BeforeValidator(parse_target)] = None
    floor: Annotated[Decimal | None, parse_number("floor")] = None
    weight: Annotated[Decimal, parse_number("weight")] = Decimal(1)
    schedule: str = DEFAULT_SCHEDULE
    source: dict[str, Any]
    alerts: AlertPolicyOverride | None = None

    @field_validator("weight")
    @classmethod
    def _positive_weight(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(f"weight must be greater than 0, got {value}")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = " ".join(value.split())
        problem = _check_cron(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("source")
    @classmethod
    def _source_has_type(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("type")
        if not isinstance(kind, str) or not kind:
            raise FieldError(("type",), "a source needs a 'type', e.g. type: sql or type: http")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KeyResultDef:
        if self.kind is None:
            self.kind = self._infer_kind()
        if self.kind == "milestone":
            for name in ("baseline", "target", "floor"):
                if getattr(self, name) is not None:
                    raise FieldError(
                        (name,), f"a milestone takes no {name}; its value 1 (or true) means done"
                    )
            return self
        if self.target is None:
            raise FieldError(("target",), f"a '{self.kind}' key result needs a target")
        relative = isinstance(self.target, str)
        if relative and self.baseline is None:
            raise FieldError(
                ("baseline",),
                f"relative target {self.target!r} needs a baseline (a number or 'auto')",
            )
        if self.kind in ("increase", "decrease"):
            self._check_direction()
        else:
            self._check_floor()
        return self

    def _infer_kind(self) -> KrKind:
        if isinstance(self.target, str):
            return "increase" if self.target.startswith("+") else "decrease"
        if isinstance(self.target, Decimal) and isinstance(self.baseline, Decimal):
            if self.target > self.baseline:
                return "increase"
            if self.target < self.baseline:
                return "decrease"
            raise FieldError(
                ("target",),
                f"target equals baseline ({self.target}); set kind: at_least or at_most to "
                "hold a level, or change the target",
            )
        if self.target is None and self.baseline is None:
            raise FieldError(
                ("target",), "set a baseline and a target, or kind: milestone for a yes/no KR"
            )
        if self.target is None:
            raise FieldError(("target",), "missing target")
        raise FieldError(
            ("kind",),
            "cannot tell the direction without a numeric baseline; set kind: increase, "
            "decrease, at_least or at_most",
        )

    def _check_direction(self) -> None:
        if self.floor is not None:
            raise FieldError(("floor",), f"floor applies to at_least/at_most, not {self.kind}")
        if isinstance(self.target, str):
            wants_up = self.target.startswith("+")
            if wants_up != (self.kind == "increase") or is_zero_change(self.target):
                raise FieldError(
                    ("target",), f"relative target {self.target!r} contradicts kind {self.kind}"
                )
            return
        if isinstance(self.baseline, Decimal) and isinstance(self.target, Decimal):
            if self.kind == "increase" and not self.target > self.baseline:
                raise FieldError(
                    ("target",),
                    f"kind increase needs target > baseline, got {self.target} <= {self.baseline}",
                )
            if self.kind == "decrease" and not self.target < self.baseline:
                raise FieldError(
                    ("target",),
                    f"kind decrease needs target < baseline, got {self.target} >= {self.baseline}",
                )

    def _check_floor(self) -> None:
        if self.floor is None or not isinstance(self.target, Decimal):
            return
        if self.kind == "at_least" and not self.floor < self.target:
            raise FieldError(
                ("floor",), f"at_least needs floor < target, got {self.floor} >= {self.target}"
            )
        if self.kind == "at_most" and not self.floor > self.target:
            raise FieldError(
                ("floor",), f"at_most needs floor > target, got {self.floor} <= {self.target}"
            )

    @property
    def effective_kind(self) -> KrKind:
        """The kind, declared or inferred (always set after validation)."""
        assert self.kind is not None  # set by the model validator
        return self.kind

    def needs_baseline_measurement(self) -> bool:
        """True when the baseline is ``auto`` and must be measured at cycle start."""
        return self.baseline == "auto"

    def spec(self, measured_baseline: Decimal | None = None) -> KrSpec:
        """The scoring spec of this KR.

        Args:
            measured_baseline: The value measured at cycle start; required when
                ``baseline`` is ``auto``, ignored otherwise.

        Returns:
            A :class:`~okr_core.scoring.KrSpec` with an absolute target.

        Raises:
            ValueError: The baseline is ``auto`` and no measured baseline was given.
        """
        kind = self.effective_kind
        if kind == "milestone":
            return KrSpec(kind=kind, baseline=Decimal(0), target=Decimal(1), weight=self.weight)
        baseline = self.baseline if isinstance(self.baseline, Decimal) else measured_baseline
        if self.baseline == "auto" and baseline is None:
            raise ValueError(f"key result {self.id!r}: baseline 'auto' has not been measured")
        assert self.target is not None  # enforced by the model validator
        if isinstance(self.target, str):
            assert baseline is not None  # relative targets require a baseline
            target = resolve_target(self.target, baseline)
        else:
            target = self.target
        return KrSpec(
            kind=kind, baseline=baseline, target=target, floor=self.floor, weight=self.weight
        )


class ObjectiveDef(_Model):
    """An objective: qualitative, owned, with key results; may support a parent objective."""

    id: Id
    title: Text
    description: str = ""
    owner: Text
    type: ObjectiveType = "aspirational"
    parent: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    success_level: Annotated[float, Field(gt=0, le=1)] | None = None
    key_results: Annotated[list[KeyResultDef], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_kr_ids(self) -> ObjectiveDef:
        seen: set[str] = set()
        for index, kr in enumerate(self.key_results):
            if kr.id in seen:
                raise FieldError(
                    ("key_results", index, "id"),
                    f"duplicate key result id {kr.id!r} in objective {self.id!r}",
                )
            seen.add(kr.id)
        if self.parent == self.id:
            raise FieldError(("parent",), f"objective {self.id!r} cannot be its own parent")
        return self

    @property
    def effective_success_level(self) -> float:
        """``success_level`` if set, else 0.7 for aspirational and 1.0 for committed."""
        if self.success_level is not None:
            return self.success_level
        return SUCCESS_LEVELS[self.type]

    def warnings(self) -> list[str]:
        """Advice that is not an error, e.g. a KR count outside OKR practice (2-5)."""
        low, high = RECOMMENDED_KR_COUNT
        count = len(self.key_results)
        if count < low or count > high:
            noun = "key result" if count == 1 else "key results"
            return [f"objective {self.id!r} has {count} {noun}; OKR practice is {low}-{high}"]
        return []


class OkrFileDef(_Model):
    """One OKR definition file: a cycle and its objectives."""

    cycle: CycleDef
    objectives: Annotated[list[ObjectiveDef], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_objective_ids(self) -> OkrFileDef:
        seen: set[str] = set()
        for index, objective in enumerate(self.objectives):
            if objective.id in seen:
                raise FieldError(
                    ("objectives", index, "id"), f"duplicate objective id {objective.id!r}"
                )
            seen.add(objective.id)
        return self

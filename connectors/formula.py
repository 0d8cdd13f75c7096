"""The ``formula`` source: a KR computed from other KRs' values at the same as-of.

::

    source:
      type: formula
      expression: "activated / signed_up * 100"

The expression is parsed by a small grammar of its own, never by Python's ``eval``:

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("-" | "+") unary | atom
    atom       := NUMBER | NAME | "[" REFERENCE "]" | FUNCTION "(" expression ("," expression)* ")"
                | "(" expression ")"

``NUMBER`` is ``12``, ``0.5`` or ``.5`` (no exponent, no ``_``). A reference is a KR id:
written bare (``signed_up``) when it is made of letters, digits and ``_`` and starts with a
letter or ``_``, or in brackets (``[growth/activated]``, ``[nps-2024]``) for
``objective/kr`` or an id holding ``-`` or ``.``, which would otherwise read as arithmetic.
A bare id names a KR whose id is unique across the OKR files, as ``okr run --kr`` does.
``FUNCTION`` is ``min``, ``max`` (one argument or more) or ``abs`` (one); a name not
followed by ``(`` is a reference, so a KR may be called ``min``.

Arithmetic is exact ``Decimal``: sums, differences and products of stored values (28
significant digits) are exact, quotients are rounded half-even at 60 digits and the result,
like every value, to the 28 significant digits the store keeps. If any referenced value is
missing (``None``: no data, or its fetch failed) the result is ``None`` — no data, never 0.
Division by zero is an error naming the divisor (:class:`FormulaZeroDivisionError`): a ratio
over nothing has no value, and saying why is more useful than a silent ``no_data``.

The source cannot compute a formula that references KRs alone: the run measures the
referenced KRs first and then evaluates the formulas in dependency order
(``okr_pipeline.run.formulas``). Its ``fetch`` evaluates constant expressions and refuses
the others with a message saying so.
"""

from __future__ import annotations

from decimal import (
    Decimal,
)
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from okr_pipeline.connectors.base import BaseSource, BaseSourceConfig, SourceContext
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.formula_grammar import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    Formula,
    FormulaError,
    FormulaSyntaxError,
    FormulaZeroDivisionError,
    evaluate,
    parse_formula,
)

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Formula",
    "FormulaError",
    "FormulaSource",
    "FormulaSourceConfig",
    "FormulaSyntaxError",
    "FormulaZeroDivisionError",
    "evaluate",
    "parse_formula",
]


class FormulaSourceConfig(BaseSourceConfig):
    """A KR computed from other KRs' values at the same as-of."""

    type: Literal["formula"] = Field(
        description="A KR computed from other KRs' values at the same as-of."
    )
    expression: str = Field(
        description=(
            "Arithmetic over other KRs' values: numbers, + - * /, parentheses, min(...), "
            "max(...), abs(...) and KR ids, bare (signed_up) or in brackets "
            "([growth/activated]). E.g. 'activated / signed_up * 100'."
        ),
        min_length=1,
        max_length=MAX_LENGTH,
    )

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        parse_formula(expression)  # FormulaSyntaxError is a ValueError: a validation error
        return expression

    def references(self) -> tuple[str, ...]:
        """The KR references of the expression, as written, once each.

        Returns:
            Bare KR ids and ``objective/kr`` references.
        """
        return parse_formula(self.expression).references

    def formula(self) -> Formula:
        """The parsed expression.

        Returns:
            The formula.
        """
        return parse_formula(self.expression)

    def uses_as_of(self) -> bool:  # noqa: D102 - documented on the base
        # Computed from the referenced KRs' values at the as-of given: backfills work.
        return True


class FormulaSource(BaseSource[FormulaSourceConfig]):
    """A KR computed from other KRs' values at the same as-of (no external call)."""

    type_name: ClassVar[str] = "formula"
    config_model: ClassVar[type[BaseSourceConfig]] = FormulaSourceConfig
    reads: ClassVar[str] = "arithmetic over other KRs' values at the same as-of"
    authentication: ClassVar[str] = "none"
    tested_against: ClassVar[str] = "no external service (computed in the run)"

    def fetch(self, config: FormulaSourceConfig, ctx: SourceContext) -> Decimal | None:
        """Compute a formula without references; one with references needs the run.

        Args:
            config: The formula.
            ctx: The KR being measured (for messages).

        Returns:
            The value of a constant expression.

        Raises:
            FatalSourceError: The formula references KRs (``okr run`` computes it after
                them), or divides by zero.
        """
        formula = config.formula()
        if formula.references:
            raise FatalSourceError(
                f"{ctx.kr_ref}: a formula KR is computed by 'okr run' after the KRs it "
                f"references ({', '.join(formula.references)}); it cannot be fetched alone"
            )
        try:
            return formula.evaluate({})
        except FormulaError as exc:
            raise FatalSourceError(f"{ctx.kr_ref}: formula {config.expression!r}: {exc}") from exc

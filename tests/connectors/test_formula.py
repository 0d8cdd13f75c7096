"""The formula grammar and evaluator (connectors/formula.py), and its place in the contract."""

from __future__ import annotations

import ast
import builtins
import inspect
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from okr_pipeline.connectors import formula as formula_module
from okr_pipeline.connectors.base import SourceContext, SourceEnvironment
from okr_pipeline.connectors.errors import FatalSourceError
from okr_pipeline.connectors.formula import (
    FormulaError,
    FormulaSource,
    FormulaSourceConfig,
    FormulaSyntaxError,
    FormulaZeroDivisionError,
    evaluate,
    parse_formula,
)
from okr_pipeline.connectors.registry import parse_source_config
from okr_pipeline.connectors.testing import ConnectorContract

D = Decimal
VALUES: Mapping[str, Decimal | None] = {
    "activated": D(30),
    "signed_up": D(120),
    "growth/rate": D("0.25"),
    "nps-2024": D("-12.5"),
    "min": D(7),
    "zero": D(0),
    "missing": None,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("activated / signed_up * 100", D(25)),
        ("activated / signed_up", D("0.25")),
        ("1 + 2 * 3", D(7)),
        ("(1 + 2) * 3", D(9)),
        ("10 - 4 - 3", D(3)),  # left-associative
        ("24 / 4 / 3", D(2)),
        ("-3 + 5", D(2)),
        ("--3", D(3)),
        ("+3 - -3", D(6)),
        ("2 * -3", D(-6)),
        (".5 + 1.", D("1.5")),
        ("0.1 + 0.2", D("0.3")),  # exact, not float
        ("1 / 3", D("0.3333333333333333333333333333")),  # rounded to the stored 28 digits
        ("2 / 3", D("0.6666666666666666666666666667")),
        ("[growth/rate] * 4", D(1)),
        ("[nps-2024] * 2", D(-25)),
        ("[ growth/rate ]", D("0.25")),
        ("min + 1", D(8)),  # a KR may be called min: a reference unless a call
        ("min(3, activated, 10)", D(3)),
        ("max(3, activated, 10)", D(30)),
        ("max(1)", D(1)),
        ("abs([nps-2024])", D("12.5")),
        ("abs(min(-1, -2))", D(2)),
        ("activated * 0", D(0)),
        ("zero * activated", D(0)),
        ("  activated\t/\nsigned_up  ", D("0.25")),
        ("9999999999999 * 9999999999999", D("99999999999980000000000001")),
    ],
)
def test_grammar_table(expression: str, expected: Decimal) -> None:
    value = evaluate(expression, VALUES)
    assert isinstance(value, Decimal)
    assert value == expected
    assert str(value) == str(expected)


@pytest.mark.parametrize(
    ("expression", "error", "message"),
    [
        ("", FormulaSyntaxError, "the formula is empty"),
        ("   ", FormulaSyntaxError, "the formula is empty"),
        ("1 +", FormulaSyntaxError, "expected a number, a KR id or '(' at the end (column 4)"),
        ("(1 + 2", FormulaSyntaxError, "expected ')' at the end (column 7)"),
        ("1 + 2)", FormulaSyntaxError, "unexpected ')' at column 6"),
        ("1 2", FormulaSyntaxError, "unexpected '2' at column 3"),
        ("a ** 2", FormulaSyntaxError, "expected a number, a KR id or '(' at column 4"),
        ("a.b", FormulaSyntaxError, "unexpected character '.' at column 2"),
        ("__import__(os)", FormulaSyntaxError, "unknown function '__import__' at column 1"),
        ("eval(1)", FormulaSyntaxError, "unknown function 'eval' at column 1; known: abs"),
        ("abs(1, 2)", FormulaSyntaxError, "abs takes one argument, got 2"),
        ("min()", FormulaSyntaxError, "expected a number, a KR id or '(' at column 5"),
        ("1e5", FormulaSyntaxError, "unexpected 'e5' at column 2"),
        ("'a'", FormulaSyntaxError, 'unexpected character "\'" at column 1'),
        ("[a/b/c]", FormulaSyntaxError, "'[a/b/c]' at column 1 is not a KR reference"),
        ("[]", FormulaSyntaxError, "'[]' at column 1 is not a KR reference"),
        ("[-a]", FormulaSyntaxError, "is not a KR reference"),
        ("(" * 70 + "1" + ")" * 70, FormulaSyntaxError, "nested more than 64 deep"),
        ("-" * 70 + "1", FormulaSyntaxError, "nested more than 64 deep"),
        ("1" + " + 1" * 600, FormulaSyntaxError, "characters long; at most 2000"),
        ("activated / zero", FormulaZeroDivisionError, "division by zero: zero is 0"),
        ("1 / 0", FormulaZeroDivisionError, "divides by the number 0"),
        ("1 / (signed_up - 120)", FormulaZeroDivisionError, "the divisor is 0"),
        ("0 / 0", FormulaZeroDivisionError, "division by zero"),
        ("unknown + 1", FormulaError, "no value given for unknown"),
        ("10000000000000000 * 1000000000000", FormulaError, "out of the range this product"),
    ],
)
def test_errors_table(expression: str, error: type[FormulaError], message: str) -> None:
    with pytest.raises(error) as caught:
        evaluate(expression, VALUES)
    assert message in str(caught.value)
    assert type(caught.value) is error


def test_syntax_errors_carry_the_column() -> None:
    with pytest.raises(FormulaSyntaxError) as caught:
        parse_formula("activated / (signed_up +)")
    assert caught.value.position == 25


@pytest.mark.parametrize(
    "expression",
    ["missing + 1", "missing / 0", "min(missing, 1)", "abs(missing)", "0 * missing"],
)
def test_a_missing_value_gives_no_data_never_zero(expression: str) -> None:
    assert evaluate(expression, VALUES) is None


def test_references_as_written_once_each_in_order() -> None:
    formula = parse_formula("b + [o/a] * b - min(c, [b]) + 1")
    assert formula.references == ("b", "o/a", "c")


# -- properties -------------------------------------------------------------------------

ALPHABET = "0123456789.+-*/(), []_abcmnix/\t"
REFS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "min", "x", "o/a", "ab"]),
    st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=6)),
)


def _no_eval(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the formula evaluator called eval/exec")


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=80), st.text(alphabet=ALPHABET, max_size=80)), values=REFS)
def test_any_text_gives_a_value_or_a_formula_error(
    text: str, values: Mapping[str, Decimal | None]
) -> None:
    with (
        mock.patch.object(builtins, "eval", _no_eval),
        mock.patch.object(builtins, "exec", _no_eval),
    ):
        try:
            result = evaluate(text, values)
        except FormulaError:
            return
    assert result is None or isinstance(result, Decimal)
    if result is not None:
        assert result.is_finite()


def test_the_module_never_names_eval_exec_or_attribute_access() -> None:
    tree = ast.parse(inspect.getsource(formula_module))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "getattr", "__import__"}


INTS = st.integers(min_value=-(10**12), max_value=10**12)


@given(a=INTS, b=INTS, c=INTS)
def test_integer_arithmetic_is_exact(a: int, b: int, c: int) -> None:
    values = {"a": D(a), "b": D(b), "c": D(c)}
    assert evaluate("a + b * c", values) == a + b * c
    assert evaluate("(a - b) * -c", values) == (a - b) * -c
    assert evaluate("min(a, b, c) - max(a, b) + abs(c)", values) == min(a, b, c) - max(a, b) + abs(
        c
    )
    if b:
        assert evaluate("a * b / b", values) == a


@given(
    x=st.decimals(min_value=-(10**9), max_value=10**9, places=4),
    y=st.decimals(min_value=-(10**9), max_value=10**9, places=4),
)
def test_decimal_sums_and_products_are_exact(x: Decimal, y: Decimal) -> None:
    values = {"x": x, "y": y}
    assert evaluate("x + y", values) == x + y
    assert evaluate("x * y - y", values) == x * y - y


# -- the config model and the source ------------------------------------------------------


def test_config_refuses_a_bad_expression_with_its_column() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_source_config({"type": "formula", "expression": "activated / (signed_up"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("expression",)
    assert "expected ')' at the end (column 23)" in error["msg"]


def test_config_exposes_the_references_and_takes_an_as_of() -> None:
    config = parse_source_config({"type": "formula", "expression": "a / [o/b]"})
    assert isinstance(config, FormulaSourceConfig)
    assert config.references() == ("a", "o/b")
    assert config.uses_as_of()


CTX = SourceContext(
    as_of=datetime(2026, 10, 5, tzinfo=UTC),
    cycle_start=datetime(2026, 10, 1, tzinfo=UTC),
    cycle_end=datetime(2027, 1, 1, tzinfo=UTC),
    kr_ref="growth/rate",
)


def test_fetching_a_formula_with_references_says_the_run_computes_it() -> None:
    config = FormulaSourceConfig(type="formula", expression="a / b")
    with FormulaSource(SourceEnvironment()) as source, pytest.raises(FatalSourceError) as caught:
        source.fetch(config, CTX)
    assert "growth/rate: a formula KR is computed by 'okr run' after the KRs it" in str(
        caught.value
    )


class TestFormulaContract(ConnectorContract):
    """The contract, where it applies: a formula makes no call, so nothing can time out,
    be rate-limited, fail on a server or be refused. A constant formula is what the source
    computes alone; the run computes those with references (tests/run/test_formulas.py).
    """

    source_class = FormulaSource
    expected_value = D("0.625")
    not_applicable: ClassVar[Mapping[str, str]] = {
        "timeout": "a formula makes no external call",
        "rate_limited": "a formula makes no external call",
        "server_error": "a formula makes no external call",
        "unauthorized": "a formula signs in nowhere",
    }

    def environment(self) -> SourceEnvironment:
        # A secret the formula never uses: the leak checks still look for it everywhere.
        return SourceEnvironment(secrets={"unused": SecretStr("formula-7f3a9c1e-SECRET")})

    def valid_config(self) -> Mapping[str, Any]:
        return {"type": "formula", "expression": "-(1.5 - 4) * 2 / 8"}

    def failing_config(self, scenario: str) -> Mapping[str, Any] | None:
        # No single number: the constant divides by zero.
        if scenario == "bad_shape":
            return {"type": "formula", "expression": "1 / (2 - 2)"}
        return None

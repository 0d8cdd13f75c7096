"""The grammar of ``formula`` sources: parsed without ``eval``, evaluated in exact Decimals.

Numbers, ``+ - * /``, unary signs, parentheses, ``min``/``max``/``abs`` and KR references
(bare ids, or ``[objective/kr]``). See :mod:`okr_pipeline.connectors.formula` for the source.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import TypeAlias

from okr_pipeline.connectors.values import NotANumberError, to_decimal
from okr_pipeline.okr_core.definitions import ID_PATTERN

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Formula",
    "FormulaError",
    "FormulaSyntaxError",
    "FormulaZeroDivisionError",
    "evaluate",
    "parse_formula",
]

#: Longest expression accepted; a formula is a line of arithmetic, not a program.
MAX_LENGTH = 2000
#: Deepest nesting of parentheses, unary signs and calls (keeps the parser's recursion bounded).
MAX_DEPTH = 64
FUNCTIONS = ("abs", "max", "min")

# Sums and products of two 28-digit values need at most 57 digits: 60 keeps them exact.
# A magnitude beyond 10**999999 is refused rather than computed.
_CONTEXT = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>\d+(?:\.\d*)?|\.\d+)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<bracket>\[[^\[\]]*\])
    | (?P<op>[-+*/(),])
    """,
    re.VERBOSE,
)
_ID = re.compile(ID_PATTERN)


class FormulaError(ValueError):
    """A formula cannot be parsed or evaluated; the message says where and why.

    A ``ValueError``, so that a config model's validator turns it into a validation error
    that ``okr validate`` shows with file and line.

    Attributes:
        position: 1-based column of the problem in the expression, when it is about one.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class FormulaSyntaxError(FormulaError):
    """The expression is not in the grammar (the message names the column)."""


class FormulaZeroDivisionError(FormulaError):
    """The expression divides by zero at this as-of."""


@dataclass(frozen=True)
class _Num:
    value: Decimal


@dataclass(frozen=True)
class _Ref:
    name: str


@dataclass(frozen=True)
class _Neg:
    operand: Node


@dataclass(frozen=True)
class _BinOp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Node, ...]


# The parsed tree is immutable, so one Formula is shared by every thread of a run.
Node: TypeAlias = "_Num | _Ref | _Neg | _BinOp | _Call"


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "ref", "op" or "end"
    text: str
    column: int  # 1-based


def _tokens(expression: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(expression):
        match = _TOKEN.match(expression, at)
        if match is None:
            raise FormulaSyntaxError(
                f"unexpected character {expression[at]!r} at column {at + 1}; a formula holds "
                "numbers, KR ids, + - * / ( ), [objective/kr] and min, max, abs",
                at + 1,
            )
        kind, text = match.lastgroup or "", match.group()
        if kind == "bracket":
            tokens.append(_Token("ref", _bracketed(text, at + 1), at + 1))
        elif kind != "space":
            tokens.append(_Token(kind, text, at + 1))
        at = match.end()
    tokens.append(_Token("end", "", len(expression) + 1))
    return tokens


def _bracketed(text: str, column: int) -> str:
    inner = text[1:-1].strip()
    parts = inner.split("/")
    if not inner or len(parts) > 2 or not all(_ID.match(part) for part in parts):
        raise FormulaSyntaxError(
            f"{text!r} at column {column} is not a KR reference; write [objective/kr] or [kr] "
            "with ids of letters, digits, '_', '.' and '-'",
            column,
        )
    return inner


class _Parser:
    """Recursive descent over the token list; depth-bounded, so any text ends quickly."""

    def __init__(self, expression: str) -> None:
        self.tokens = _tokens(expression)
        self.index = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text or token.kind not in ("op",):
            raise FormulaSyntaxError(f"expected {text!r} {_at(token)}", token.column)

    def parse(self) -> Node:
        node = self.expression()
        token = self.peek()
        if token.kind != "end":
            raise FormulaSyntaxError(
                f"unexpected {_shown(token)} at column {token.column}; expected an operator "
                "(+ - * /) or the end",
                token.column,
            )
        return node

    def expression(self) -> Node:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            token = self.take()
            node = _BinOp(token.text, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            token = self.take()
            node = _BinOp(token.text, node, self.unary())
        return node

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text in "+-":
            self.take()
            with self.nested(token):
                operand = self.unary()
            return _Neg(operand) if token.text == "-" else operand
        return self.atom()

    def atom(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return _Num(Decimal(token.text))
        if token.kind == "ref":
            return _Ref(token.text)
        if token.kind == "name":
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(token)
            return _Ref(token.text)
        if token.kind == "op" and token.text == "(":
            with self.nested(token):
                node = self.expression()
            self.expect(")")
            return node
        raise FormulaSyntaxError(f"expected a number, a KR id or '(' {_at(token)}", token.column)

    def call(self, name: _Token) -> Node:
        if name.text not in FUNCTIONS:
            raise FormulaSyntaxError(
                f"unknown function {name.text!r} at column {name.column}; "
                f"known: {', '.join(FUNCTIONS)}",
                name.column,
            )
        self.take()  # "("
        args: list[Node] = []
        with self.nested(name):
            args.append(self.expression())
            while self.peek().kind == "op" and self.peek().text == ",":
                self.take()
                args.append(self.expression())
        self.expect(")")
        if name.text == "abs" and len(args) != 1:
            raise FormulaSyntaxError(
                f"abs takes one argument, got {len(args)} (column {name.column})", name.column
            )
        return _Call(name.text, tuple(args))

    def nested(self, token: _Token) -> _Depth:
        return _Depth(self, token)


class _Depth:
    def __init__(self, parser: _Parser, token: _Token) -> None:
        self.parser, self.token = parser, token

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_DEPTH:
            raise FormulaSyntaxError(
                f"nested more than {MAX_DEPTH} deep at column {self.token.column}",
                self.token.column,
            )

    def __exit__(self, *exc: object) -> None:
        self.parser.depth -= 1


def _shown(token: _Token) -> str:
    return "end of the formula" if token.kind == "end" else repr(token.text)


def _at(token: _Token) -> str:
    if token.kind == "end":
        return f"at the end (column {token.column})"
    return f"at column {token.column}, got {token.text!r}"


def _zero_divisor(node: Node) -> str:
    """What divided by zero, for the message."""
    if isinstance(node, _Ref):
        return f"{node.name} is 0"
    if isinstance(node, _Num):
        return "the formula divides by the number 0"
    return "the divisor is 0"


@dataclass(frozen=True)
class Formula:
    """A parsed expression.

    Attributes:
        expression: The text as written.
        references: The KR references it uses, as written (bare id or ``objective/kr``),
            once each, in order of first use.
    """

    expression: str
    references: tuple[str, ...]
    _tree: Node

    def evaluate(self, values: Mapping[str, Decimal | None]) -> Decimal | None:
        """Compute the formula from the referenced KRs' values.

        Args:
            values: The value of each reference (keys as in :attr:`references`); ``None``
                for a KR without a value at this as-of.

        Returns:
            The exact result; ``None`` (no data) when any referenced value is ``None``.

        Raises:
            FormulaZeroDivisionError: A division by zero.
            FormulaError: A reference has no entry in ``values``, or a result is too large.
        """
        missing = [ref for ref in self.references if ref not in values]
        if missing:
            raise FormulaError(f"no value given for {', '.join(missing)}")
        if any(values[ref] is None for ref in self.references):
            return None  # no data propagates: never computed as if it were 0
        known = {ref: value for ref, value in values.items() if value is not None}
        try:
            # Rounded like every value, to the digits the store keeps (connectors.values).
            result = to_decimal(_eval(self._tree, known))
            return None if result is None else _plain(result)
        except FormulaError:
            raise
        except NotANumberError as exc:
            raise FormulaError(f"the result of {self.expression!r} {exc}") from exc
        except (Overflow, InvalidOperation) as exc:
            raise FormulaError(
                f"{self.expression!r} is out of the range of numbers (|x| < 1e999999)"
            ) from exc
        except DecimalException as exc:  # pragma: no cover - every trap is handled above
            raise FormulaError(f"{self.expression!r}: {type(exc).__name__}") from exc


def _eval(node: Node, values: Mapping[str, Decimal]) -> Decimal:
    if isinstance(node, _Num):
        return node.value
    if isinstance(node, _Ref):
        return values[node.name]
    if isinstance(node, _Neg):
        return _CONTEXT.minus(_eval(node.operand, values))
    if isinstance(node, _Call):
        args = [_eval(arg, values) for arg in node.args]
        if node.name == "abs":
            return _CONTEXT.abs(args[0])
        return min(args) if node.name == "min" else max(args)
    left, right = _eval(node.left, values), _eval(node.right, values)
    if node.op == "+":
        return _CONTEXT.add(left, right)
    if node.op == "-":
        return _CONTEXT.subtract(left, right)
    if node.op == "*":
        return _CONTEXT.multiply(left, right)
    if right.is_zero():
        raise FormulaZeroDivisionError(f"division by zero: {_zero_divisor(node.right)}")
    return _CONTEXT.divide(left, right)


def _plain(value: Decimal) -> Decimal:
    """The value without trailing zeros after the point: 30 / 120 * 100 gives 25, not 25.00."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=_CONTEXT)
    return value.normalize(_CONTEXT)


def _references(node: Node, found: dict[str, None]) -> None:
    if isinstance(node, _Ref):
        found[node.name] = None
    elif isinstance(node, _Neg):
        _references(node.operand, found)
    elif isinstance(node, _Call):
        for arg in node.args:
            _references(arg, found)
    elif isinstance(node, _BinOp):
        _references(node.left, found)
        _references(node.right, found)


@functools.lru_cache(maxsize=4096)
def parse_formula(expression: str) -> Formula:
    """Parse an expression of the formula grammar (see the module docstring).

    Args:
        expression: The text, e.g. ``"activated / signed_up * 100"``.

    Returns:
        The parsed formula (cached: configs parse once at validation and again per run).

    Raises:
        FormulaSyntaxError: The text is not in the grammar; the message names the column.
    """
    if not isinstance(expression, str):
        raise FormulaSyntaxError(f"a formula is text, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise FormulaSyntaxError(
            f"the formula is {len(expression)} characters long; at most {MAX_LENGTH}"
        )
    if not expression.strip():
        raise FormulaSyntaxError("the formula is empty; write e.g. 'activated / signed_up'")
    tree = _Parser(expression).parse()
    found: dict[str, None] = {}
    _references(tree, found)
    return Formula(expression, tuple(found), tree)


def evaluate(expression: str, values: Mapping[str, Decimal | None]) -> Decimal | None:
    """Parse and compute an expression from the referenced KRs' values.

    Args:
        expression: The formula text.
        values: The value of each reference; ``None`` where a KR has no value.

    Returns:
        The result, or ``None`` (no data) when a referenced value is ``None``.

    Raises:
        FormulaError: A syntax error, a division by zero, a missing entry or an overflow.
    """
    return parse_formula(expression).evaluate(values)

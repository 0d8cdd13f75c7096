"""How each supported database splits SQL text into tokens, for :mod:`connectors.sql_guard`.

Quotes, dollar quotes, comments and identifiers differ between PostgreSQL, MySQL/MariaDB
(in their usual modes) and SQLite. Each way of reading is a :class:`Reading`;
:func:`tokenize` splits a query as that database would, dropping comments, so the guard's
rules see the words the database runs. One comment is refused here already: MySQL and
MariaDB run the text of ``/*! ... */``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "READINGS",
    "READING_DEPENDENT",
    "Reading",
    "Token",
    "UnsafeQueryError",
    "at",
    "tokenize",
]


class UnsafeQueryError(ValueError):
    """The query is not exactly one read-only query (a ValueError, so validators report it)."""


@dataclass(frozen=True)
class Reading:
    """How one database splits SQL text into tokens."""

    name: str
    dash_comment_needs_space: bool = False  # MySQL: "--" starts a comment only before a space
    hash_comments: bool = False  # MySQL: "#" to the end of the line
    nested_comments: bool = False  # PostgreSQL: /* /* */ */
    executable_comments: bool = False  # MySQL: /*! ... */ is run, not skipped
    backslash_escapes: bool = False  # '\'' is a quote inside a string
    double_quote_is_string: bool = False  # MySQL: "..." is a string (with escapes)
    backticks: bool = False  # `identifier`
    brackets: bool = False  # SQLite: [identifier]
    dollar_quotes: bool = False  # PostgreSQL: $tag$ ... $tag$
    e_strings: bool = False  # PostgreSQL: E'...' with backslash escapes
    dollar_in_words: bool = False  # PostgreSQL and MySQL: a$b is one identifier


READINGS = (
    Reading(
        "PostgreSQL", nested_comments=True, dollar_quotes=True, e_strings=True, dollar_in_words=True
    ),
    # PostgreSQL with standard_conforming_strings off reads backslashes in every string.
    Reading(
        "PostgreSQL",
        nested_comments=True,
        dollar_quotes=True,
        e_strings=True,
        dollar_in_words=True,
        backslash_escapes=True,
    ),
    Reading(
        "MySQL/MariaDB",
        dash_comment_needs_space=True,
        hash_comments=True,
        executable_comments=True,
        backslash_escapes=True,
        double_quote_is_string=True,
        backticks=True,
        dollar_in_words=True,
    ),
    # sql_mode ANSI_QUOTES and NO_BACKSLASH_ESCAPES.
    Reading(
        "MySQL/MariaDB",
        dash_comment_needs_space=True,
        hash_comments=True,
        executable_comments=True,
        backticks=True,
        dollar_in_words=True,
    ),
    Reading("SQLite", backticks=True, brackets=True),
)


class Token(NamedTuple):
    """One token of a query, where it starts, and what it is (a tuple: cheap to make)."""

    kind: str  # "word", "quoted" (identifier), "string", "semi", "other"
    text: str
    pos: int


# A word starts with an ASCII letter, '_' or any character past ASCII; it goes on with those
# and digits. Written as what they are not: a class up to U+10FFFF takes 15 ms to compile.
_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"  # [A-Za-z_\x80-\U0010ffff]
_PART = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # [\w\x80-\U0010ffff]
_WORD_START = re.compile(_START)
_DOLLAR_TAG = re.compile(rf"\$({_START}{_PART}*)?\$")
_SPACE = " \t\n\r\f\v"
_WORD_REST = re.compile(r"\w*")  # str.isalnum() or "_", as a regex: a C loop
_WORD_REST_DOLLAR = re.compile(r"[\w$]*")
# Characters (and pairs) that some database reads differently from another: a query without
# them is split the same way by every reading.
READING_DEPENDENT = re.compile(r"['\"`\[$#\\]|--|/\*")


def tokenize(sql: str, reading: Reading) -> list[Token]:
    """Split ``sql`` into tokens the way ``reading``'s database does; comments are dropped.

    An unterminated string, identifier or comment runs to the end of the text (the database
    refuses it, and nothing after it runs).

    Raises:
        UnsafeQueryError: A comment whose text MySQL or MariaDB would run (``/*! ... */``).
    """
    if not READING_DEPENDENT.search(sql):
        return _plain_tokens(sql)
    return _scanned_tokens(sql, reading)


def _scanned_tokens(sql: str, reading: Reading) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in _SPACE:
            i += 1
        elif _line_comment(sql, i, reading):
            i = _line_end(sql, i)
        elif sql.startswith("/*", i):
            if reading.executable_comments and sql.startswith(("/*!", "/*M!", "/*+"), i):
                raise UnsafeQueryError(
                    f"the comment {at(sql, i)} is refused: MySQL and MariaDB run the text "
                    f"of /*! ... */ comments (and read /*+ ... */ as hints); use -- comments"
                )
            i = _comment_end(sql, i, reading.nested_comments)
        elif c == "'":
            end = _quote_end(sql, i, "'", reading.backslash_escapes)
            tokens.append(Token("string", sql[i:end], i))
            i = end
        elif c in "eE" and reading.e_strings and sql.startswith("'", i + 1):
            end = _quote_end(sql, i + 1, "'", backslash=True)
            tokens.append(Token("string", sql[i:end], i))
            i = end
        elif c == '"':
            string = reading.double_quote_is_string
            end = _quote_end(sql, i, '"', backslash=string and reading.backslash_escapes)
            tokens.append(Token("string" if string else "quoted", sql[i + 1 : end - 1], i))
            i = end
        elif c == "`" and reading.backticks:
            end = _quote_end(sql, i, "`", backslash=False)
            tokens.append(Token("quoted", sql[i + 1 : end - 1], i))
            i = end
        elif c == "[" and reading.brackets:
            close = sql.find("]", i + 1)
            end = n if close < 0 else close + 1
            tokens.append(Token("quoted", sql[i + 1 : end - 1], i))
            i = end
        elif c == "$" and reading.dollar_quotes and (tag := _DOLLAR_TAG.match(sql, i)):
            close = sql.find(tag[0], tag.end())
            end = n if close < 0 else close + len(tag[0])
            tokens.append(Token("string", sql[i:end], i))
            i = end
        elif _WORD_START.match(c) or (c == "$" and reading.dollar_in_words and i + 1 < n):
            rest = _WORD_REST_DOLLAR if reading.dollar_in_words else _WORD_REST
            match = rest.match(sql, i + 1)
            end = match.end() if match else i + 1
            tokens.append(Token("word", sql[i:end], i))
            i = end
        elif c == ";":
            tokens.append(Token("semi", c, i))
            i += 1
        else:
            tokens.append(Token("other", c, i))
            i += 1
    return tokens


# Without quotes, comments, brackets or '$' (READING_DEPENDENT), a query is made of spaces,
# words, ';' and single other characters, whatever the reading: one regular expression
# splits it, ten times faster than the loop of ``tokenize``, into the same tokens.
_PLAIN_TOKEN = re.compile(
    rf"[ \t\n\r\f\v]+|(?P<word>{_START}\w*)|(?P<semi>;)|(?P<other>.)", re.DOTALL
)


def _plain_tokens(sql: str) -> list[Token]:
    return [
        Token(kind, match[kind], match.start())
        for match in _PLAIN_TOKEN.finditer(sql)
        if (kind := match.lastgroup) is not None
    ]


def _line_comment(sql: str, i: int, reading: Reading) -> bool:
    if sql.startswith("--", i):
        return not reading.dash_comment_needs_space or i + 2 >= len(sql) or sql[i + 2] <= " "
    return sql[i] == "#" and reading.hash_comments


def _line_end(sql: str, i: int) -> int:
    ends = [pos for pos in (sql.find("\n", i), sql.find("\r", i)) if pos >= 0]
    return min(ends) + 1 if ends else len(sql)


def _comment_end(sql: str, i: int, nested: bool) -> int:
    depth, i = 1, i + 2
    while i < len(sql):
        if sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0 or not nested:
                return i
        elif nested and sql.startswith("/*", i):
            depth += 1
            i += 2
        else:
            i += 1
    return len(sql)  # unterminated: the database refuses it, nothing after it runs


def _quote_end(sql: str, i: int, quote: str, backslash: bool) -> int:
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if backslash and c == "\\":
            j += 2
        elif c == quote:
            if sql.startswith(quote, j + 1):
                j += 2  # a doubled quote stands for itself
            else:
                return j + 1
        else:
            j += 1
    return len(sql)  # unterminated: the database refuses it


def at(sql: str, pos: int) -> str:
    """Say where ``pos`` is in ``sql`` (line and column, or column for one line), for messages."""
    line = sql.count("\n", 0, pos) + 1
    column = pos - (sql.rfind("\n", 0, pos) + 1) + 1
    return f"at line {line}, column {column} of the query" if "\n" in sql else f"at column {column}"

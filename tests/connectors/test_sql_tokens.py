"""The tokenizer's short way for plain queries splits them exactly as its full scan does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from okr_pipeline.connectors.sql_tokens import (
    READING_DEPENDENT,
    READINGS,
    Token,
    _plain_tokens,
    _scanned_tokens,
    tokenize,
)

# Characters a query is made of, with the odd ones: spaces the scan does not skip, a
# non-ASCII space, letters of other scripts, digits next to words, lone '-' and '/'.
_ALPHABET = "abcXYZ_019 \t\n\r\f\v;()=<>,.*+-/%:!@&|^~?\x1c\xa0é日\u2003\x85{}"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(st.sampled_from(list(_ALPHABET)), max_size=40))
def test_plain_queries_split_the_same_both_ways(sql: str) -> None:
    if READING_DEPENDENT.search(sql):
        return  # '--' or '/*' came out of the alphabet: not a plain query
    for reading in READINGS:
        assert _plain_tokens(sql) == _scanned_tokens(sql, reading)


def test_a_plain_query_goes_the_short_way() -> None:
    sql = "SELECT sum(value) FROM events WHERE id = 12;"
    assert tokenize(sql, READINGS[0]) == [
        Token("word", "SELECT", 0),
        Token("word", "sum", 7),
        Token("other", "(", 10),
        Token("word", "value", 11),
        Token("other", ")", 16),
        Token("word", "FROM", 18),
        Token("word", "events", 23),
        Token("word", "WHERE", 30),
        Token("word", "id", 36),
        Token("other", "=", 39),
        Token("other", "1", 41),
        Token("other", "2", 42),
        Token("semi", ";", 43),
    ]


def test_quotes_and_comments_take_the_full_scan() -> None:
    sql = "SELECT 'a;b' -- c\n"
    assert tokenize(sql, READINGS[0]) == [Token("word", "SELECT", 0), Token("string", "'a;b'", 7)]


# Pieces of queries: allowed and refused first words, writing words, locking clauses,
# denied functions (by name and by prefix), calls and their spacing, digits and odd spaces.
_PIECES = [
    "SELECT", "select", "WITH", "VALUES", "TABLE", "SHOW", "DELETE", "insert", "INTO", "update",
    "FOR", "SHARE", "NO", "KEY", "NEXT", "VALUE", "LOCK", "IN", "set_config", "pg_advisory_lock",
    "DBLINK_exec", "nextval", "count", "sum", "x", "1", "(", ")", ";", ",", " ", "  ", "\n",
    "\t", "\x1c", "\xa0", "é", "€", ".", "=", "*",
]  # fmt: skip


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_PIECES), max_size=12))
def test_the_quick_check_passes_only_what_the_token_walk_passes(pieces: list[str]) -> None:
    from okr_pipeline.connectors.sql_guard import _plainly_read_only, _statement_problem

    sql = "".join(pieces)
    if READING_DEPENDENT.search(sql) or not _plainly_read_only(sql):
        return
    for reading in READINGS:
        assert _statement_problem(sql, _scanned_tokens(sql, reading), reading) is None, sql


def test_the_quick_check_takes_ordinary_queries() -> None:
    from okr_pipeline.connectors.sql_guard import _plainly_read_only

    assert _plainly_read_only("SELECT sum(value) FROM events WHERE id = 12 AND ts < :as_of;")
    assert _plainly_read_only("  (select 1) ")
    for refused in (
        "SELECT 1; SELECT 2",
        "SELECT * FROM t FOR UPDATE",
        "DELETE FROM t",
        "SELECT set_config ('a', 'b', false)",
        "SELECT pg_advisory_lock(1)",
        ";",
    ):
        assert not _plainly_read_only(refused), refused  # fmt: skip

"""Refuse SQL that is not exactly one read-only query before any database sees it.

A KR's query runs in a read-only transaction that is always rolled back, but a database
accepts things that transaction does not stop: a second statement after a ``;`` (which may
``COMMIT`` and start a read-write transaction), commands that change the session (``SET``,
``DISCARD``, ``LISTEN``), code blocks (``DO``, ``CALL``), ``COPY`` to files and programs,
and functions whose effects a rollback does not undo (advisory locks, ``set_config``,
``dblink``, server files). :func:`check_query` refuses them with a message naming what was
refused and why. It runs when an OKR file is validated and again before every fetch.

The check reads the query the way each supported database would (PostgreSQL, MySQL and
MariaDB in their usual modes, SQLite; the tokenizer is :mod:`connectors.sql_tokens`):
quotes, dollar quotes, comments and identifiers differ between them, and the source's
database is not known when a file is validated, so a query passes only if it is one
read-only query under every reading. The databases add their own limit (the extended query
protocol on PostgreSQL, no multi-statement flag on MySQL, one statement per call in SQLite)
and the read-only transaction stops writes this check cannot see, such as a user-defined
function that inserts rows.
"""

from __future__ import annotations

import re
from functools import lru_cache

from okr_pipeline.connectors.sql_tokens import (
    READING_DEPENDENT,
    READINGS,
    Reading,
    Token,
    UnsafeQueryError,
    at,
    tokenize,
)

__all__ = ["ALLOWED_FIRST_WORDS", "UnsafeQueryError", "check_query"]

ALLOWED_FIRST_WORDS = ("SELECT", "WITH", "VALUES", "TABLE", "SHOW")

# Why each statement kind is refused, by its first word.
_REFUSED_STATEMENTS: dict[str, str] = {
    word: reason
    for words, reason in (
        (
            "SET RESET DISCARD USE LOAD",
            "changes the database session, which the KRs run after it would inherit",
        ),
        (
            "BEGIN START COMMIT END ROLLBACK ABORT SAVEPOINT RELEASE XA",
            "controls the transaction that keeps the source read-only",
        ),
        (
            "DO CALL EXECUTE EXEC PREPARE DEALLOCATE HANDLER DECLARE",
            "runs code or stored statements that this check cannot see",
        ),
        ("COPY", "reads or writes files and runs programs on the database server"),
        ("LISTEN NOTIFY UNLISTEN", "signals other sessions or waits for their signals"),
        ("INSERT UPDATE DELETE MERGE UPSERT REPLACE TRUNCATE", "writes data"),
        (
            "CREATE ALTER DROP RENAME GRANT REVOKE COMMENT SECURITY REASSIGN IMPORT REFRESH",
            "changes the schema or the permissions",
        ),
        ("LOCK", "locks tables until the transaction ends"),
        ("EXPLAIN", "can run the statement it explains (ANALYZE); run the query itself"),
        (
            "VACUUM ANALYZE ANALYSE CLUSTER REINDEX CHECKPOINT OPTIMIZE FLUSH KILL SHUTDOWN "
            "INSTALL UNINSTALL PURGE RESTART",
            "is a maintenance command with effects on the server",
        ),
        ("ATTACH DETACH PRAGMA", "changes the SQLite connection"),
    )
    for word in words.split()
}

# Words that turn a query into a write or a lock wherever they appear (reserved in every
# supported database, so they cannot be an unquoted column name).
_WRITING_WORDS: dict[str, str] = {
    "INSERT": "a data-modifying statement inside the query (WITH ... INSERT)",
    "UPDATE": "a data-modifying statement or a row lock (WITH ... UPDATE, FOR UPDATE)",
    "DELETE": "a data-modifying statement inside the query (WITH ... DELETE)",
    "INTO": "SELECT ... INTO creates a table, sets variables or writes a server file",
}

# Functions callable from a SELECT whose effects a read-only transaction does not stop or
# a rollback does not undo: by name, then by prefix (a trailing '*').
_LOCK = "takes a lock that can outlive the query and block other sessions"
_SERVER = "acts on other sessions or on the database server"
_FILES = "reads or writes files on the database server"
_DENIED: tuple[tuple[str, str], ...] = (
    ("set_config", "changes a setting of the session"),
    ("pg_notify", "sends a notification to other sessions"),
    ("dblink*", "connects to another database, where this source's read-only promise ends"),
    ("pg_advisory_* pg_try_advisory_* get_lock release_lock release_all_locks", _LOCK),
    (
        "pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_promote "
        "pg_switch_wal pg_create_restore_point pg_wal_replay_pause pg_wal_replay_resume "
        "pg_log_backend_memory_contexts pg_backup_start pg_backup_stop pg_start_backup "
        "pg_stop_backup pg_drop_replication_slot pg_import_system_collations "
        "pg_export_snapshot pg_stat_reset* pg_replication_* pg_logical_* pg_create_* pg_copy_*",
        _SERVER,
    ),
    (
        "pg_read_file pg_read_binary_file pg_stat_file pg_ls_* pg_file_* lo_* loread lowrite "
        "load_file load_extension readfile writefile edit fts3_tokenizer sys_exec sys_eval",
        _FILES,
    ),
    (
        "query_to_xml query_to_xmlschema query_to_xml_and_xmlschema ts_stat ts_rewrite "
        "pg_background_*",
        "runs SQL given as text, out of the reach of this check",
    ),
    ("nextval setval", "advances a sequence, which a rollback does not undo"),
)
_DENIED_FUNCTIONS = {
    name: reason for names, reason in _DENIED for name in names.split() if "*" not in name
}
_DENIED_PREFIXES = tuple(
    (name.rstrip("*"), reason) for names, reason in _DENIED for name in names.split() if "*" in name
)
_DENIED_STARTS = tuple(prefix for prefix, _ in _DENIED_PREFIXES)
_SEQUENCE = "advances a sequence, which a rollback does not undo"


def check_query(query: str) -> None:
    """Refuse a query that is not exactly one read-only query.

    One statement (a single trailing ``;`` is allowed) starting with SELECT, WITH,
    VALUES, TABLE, SHOW or a parenthesis, with no data-modifying part, no ``SELECT ...
    INTO``, no row lock and no call to a function on the deny list (advisory locks,
    ``set_config``, ``dblink``, server files, SQL run from text...).

    Args:
        query: The KR's SQL, as written in the OKR file.

    Raises:
        UnsafeQueryError: One line naming what is refused, why, and where in the query.
    """
    problem = _problem(query)
    if problem is not None:
        raise UnsafeQueryError(problem)


@lru_cache(maxsize=65536)  # every KR's query is checked before each fetch: keep it free
def _problem(query: str) -> str | None:
    # Without quotes, comments, brackets or '$' every database splits a query the same
    # way: one reading decides. Most KR queries are such, and a run checks all of them
    # (10,000 at a time) in a fresh process, so this halves a large run's checking time.
    plain = not READING_DEPENDENT.search(query)
    if plain and _plainly_read_only(query):
        return None
    readings = READINGS[:1] if plain else READINGS
    for reading in readings:
        try:
            tokens = tokenize(query, reading)
        except UnsafeQueryError as exc:
            return str(exc)
        problem = _statement_problem(query, tokens, reading)
        if problem is not None:
            return problem
    return None


_SPACES = " \t\n\r\f\v"
_WORD = re.compile(r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]\w*")  # a word token's text
_CALL = re.compile(r"([^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]\w*)[ \t\n\r\f\v]*\(")
# Words that make the token rules look closer (FOR UPDATE, NEXT VALUE FOR, LOCK IN).
_LOOK_CLOSER = frozenset(_WRITING_WORDS) | {"FOR", "NEXT", "LOCK"}


def _plainly_read_only(query: str) -> bool:
    """Whether a plain query (no quotes, comments or '$') passes every rule, told quickly.

    The same rules as the token walk, on the words of the query, without making tokens:
    10,000 KRs are checked at each validation. True only when the walk would find nothing;
    anything it might refuse (a word such as FOR, a second ';') is left to the walk, which
    says what and where.
    """
    text = query.strip(_SPACES)
    if not text:
        return False
    if ";" in text and (text.count(";") > 1 or not text.endswith(";")):
        return False
    if text[0] != "(":
        first = _WORD.match(text)
        if first is None or first[0].upper() not in ALLOWED_FIRST_WORDS:
            return False
    if not _LOOK_CLOSER.isdisjoint(word.upper() for word in _WORD.findall(text)):
        return False
    for name in _CALL.findall(text):
        lowered = name.lower()
        if lowered in _DENIED_FUNCTIONS or lowered.startswith(_DENIED_STARTS):
            return False
    return True


def _statement_problem(query: str, tokens: list[Token], reading: Reading) -> str | None:
    if tokens and tokens[-1].kind == "semi":
        tokens = tokens[:-1]  # one trailing ';' is allowed
    if not tokens:
        return "the query is empty; write one SELECT returning one row"
    for index, token in enumerate(tokens):
        if token.kind == "semi":
            after = tokens[index + 1].text if index + 1 < len(tokens) else ";"
            return (
                f"the query holds more than one statement: the ';' {at(query, token.pos)} "
                f"is followed by {after!r}{_as_read(reading)}. A source runs exactly one "
                f"query; remove everything after the first statement"
            )
    first = tokens[0]
    if not (first.kind == "other" and first.text == "(") and not (
        first.kind == "word" and first.text.upper() in ALLOWED_FIRST_WORDS
    ):
        word = first.text.upper() if first.kind == "word" else first.text
        allowed = f"{', '.join(ALLOWED_FIRST_WORDS)} or '('"
        if word not in _REFUSED_STATEMENTS:
            return f"the query starts with {first.text!r}, not a query: start it with {allowed}"
        return (
            f"{word} statements are refused: {word} {_REFUSED_STATEMENTS[word]}. A source "
            f"runs one read-only query starting with {allowed}"
        )
    return _inner_problem(query, tokens)


def _inner_problem(query: str, tokens: list[Token]) -> str | None:
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "word":
            word = token.text.upper()
            if word in _WRITING_WORDS:
                return (
                    f"{word} {at(query, token.pos)} is refused: {_WRITING_WORDS[word]}. "
                    f"Sources are read-only; use a plain SELECT"
                )
            if word == "FOR" and following is not None and following.kind == "word":
                lock = following.text.upper()
                if lock in {"SHARE", "NO", "KEY"}:
                    return (
                        f"FOR {lock} {at(query, token.pos)} is refused: it locks rows. "
                        f"Sources are read-only; remove the locking clause"
                    )
            if word == "NEXT" and following is not None and following.text.upper() == "VALUE":
                return f"NEXT VALUE FOR {at(query, token.pos)} is refused: it {_SEQUENCE}"
            if word == "LOCK" and following is not None and following.text.upper() == "IN":
                return (
                    f"LOCK IN SHARE MODE {at(query, token.pos)} is refused: it locks rows. "
                    f"Remove the locking clause"
                )
        if token.kind in {"word", "quoted"} and following is not None and following.text == "(":
            if token.kind == "quoted" and _after_unicode_prefix(tokens, index):
                # U&"se\0074_config" names set_config: refuse rather than decode escapes.
                return (
                    f"the function name written with Unicode escapes {at(query, token.pos)} "
                    f"is refused: write function names plainly"
                )
            name = token.text.lower()
            reason = _DENIED_FUNCTIONS.get(name) or next(
                (why for prefix, why in _DENIED_PREFIXES if name.startswith(prefix)), None
            )
            if reason is not None:
                return (
                    f"the function {token.text}() {at(query, token.pos)} is refused: it "
                    f"{reason}. Sources may only read"
                )
    return None


def _after_unicode_prefix(tokens: list[Token], index: int) -> bool:
    return (
        index >= 2
        and tokens[index - 1].text == "&"
        and tokens[index - 2].text.upper() == "U"
        and tokens[index - 2].pos + 1 == tokens[index - 1].pos
    )


def _as_read(reading: Reading) -> str:
    return f" (as {reading.name} reads it)"

"""How reading commands open the store: never creating or migrating it.

``okr status``, ``runs``, ``alerts``, ``silences``, ``explain`` and ``history`` only read.
Asked in a folder where nothing ran yet, they say so and how to make a store, and leave no
``.okr/okr.db`` behind; a store from an older version is left as it is, with the command
that upgrades it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from okr_pipeline.cli.app import ExitCode, fail
from okr_pipeline.okr_core.settings import Settings, mask_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from okr_pipeline.okr_store.store import Store

#: What to tell a user who has no store yet.
HOW_TO_START = "'okr run --all' measures the KRs and creates it, or try 'okr demo'"


def open_store_to_read(settings: Settings) -> Store:
    """The project's store for reading; exits with a one-line message when there is none.

    Exits:
        ``ExitCode.NO_STORE`` (4) when nothing was stored yet or the store needs
        ``okr db upgrade``.
    """
    from okr_pipeline.okr_store.store import Store

    return Store(open_engine_to_read(settings))


def open_engine_to_read(settings: Settings) -> Engine:
    """The engine of the project's store, for a command that needs only a query or two.

    What :func:`open_store_to_read` checks, without importing the whole store (its ORM
    models and every query): ``okr status`` runs one query. The caller disposes of it.

    Exits:
        ``ExitCode.NO_STORE`` (4) as :func:`open_store_to_read`.
    """
    from okr_pipeline.okr_store import db

    url = settings.resolved_store_url()
    try:
        return db.open_engine_to_read(url)
    except db.StoreNotReadyError as exc:
        if exc.missing:
            fail(f"No store yet ({mask_url(url)}): {HOW_TO_START}.", ExitCode.NO_STORE)
        fail(f"{exc}: run 'okr db upgrade' first.", ExitCode.NO_STORE)

"""``okr status`` reads the store without the ORM, Alembic or Prefect.

Imports are most of what ``okr status`` costs over 10,000 KRs (bench/bench_cli.py): the
command runs one query through SQLAlchemy Core, so the ORM models, the store's other
queries, Alembic and Prefect stay unimported. The real command runs in a subprocess on a
project with a history, and reports what it imported.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.cli.listing_project import ListingProject, build

#: Modules ``okr status`` has no use for (the ORM comes with okr_store.models; the temporary
#: Prefect server, with its HTTP client, only with --prefect).
UNWANTED = (
    "alembic",
    "prefect",
    "sqlalchemy.orm",
    "okr_pipeline.okr_store.models",
    "okr_pipeline.okr_store.queries",
    "okr_pipeline.okr_store.store",
    "okr_pipeline.flows.temporary_api",
)

# Runs okr status as the console script does and prints, after it, the unwanted modules
# (or their submodules) it imported, on a line of its own.
SCRIPT = f"""
import sys
from okr_pipeline.cli.main import main
sys.argv = ["okr", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print()
print("imported:", sorted(
    m for m in sys.modules for u in {UNWANTED!r} if m == u or m.startswith(u + ".")
))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ListingProject]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield build(tmp_path_factory.mktemp("status-imports"), monkeypatch)


@pytest.mark.parametrize("args", [["status"], ["status", "--json"]], ids=["table", "json"])
def test_status_imports_no_orm_alembic_or_prefect(listing: ListingProject, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=listing.project,
        env=listing.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "signups" in result.stdout  # it did list the KRs
    assert result.stdout.splitlines()[-1] == "imported: []"

"""The store's revisions are read without Alembic, and agree with Alembic."""

from __future__ import annotations

import subprocess
import sys

from alembic.script import ScriptDirectory

from okr_pipeline.okr_store.db import _head_from_files, alembic_config, head_revision


def test_the_head_read_from_the_files_is_alembics() -> None:
    alembic_head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert _head_from_files() == head_revision() == alembic_head


def test_opening_a_store_to_read_imports_no_alembic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from okr_pipeline.okr_store.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    code = (
        "import sys\n"
        "from okr_pipeline.okr_store.db import open_engine_to_read\n"
        "open_engine_to_read(sys.argv[1]).dispose()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout

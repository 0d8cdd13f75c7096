"""Real file-system faults for tests: a folder nothing may be written in.

Root ignores permission bits, so as root a folder is made immutable (``chattr +i``: even
root cannot create files in it); other users get ``chmod 555``. Where neither works (a file
system without immutable flags), the test is skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make ``paths`` unwritable (even for root) for the duration of the block."""
    done: list[Path] = []
    as_root = os.geteuid() == 0
    try:
        for path in paths:
            if as_root:
                chattr = shutil.which("chattr")
                result = (
                    subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
                    if chattr
                    else None
                )
                if result is None or result.returncode != 0:
                    pytest.skip(f"cannot make {path} immutable as root (chattr +i)")
            else:
                path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
            done.append(path)
        yield
    finally:
        for path in reversed(done):
            if as_root:
                subprocess.run(["chattr", "-i", str(path)], check=True)
            else:
                path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)

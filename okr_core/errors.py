"""Errors the product raises on purpose.

The hierarchy groups errors by what the caller should do::

    OkrError                       base of every error the product raises on purpose
     ├── ConfigError               the user must fix a file or a setting
     │    ├── DefinitionError      .problems: list[Problem]; OKR files that do not validate
     │    └── StoreUnavailableError the store cannot be opened, read or written (setup)
     └── SourceError               (connectors/errors.py) a metric source failed
          ├── RetriableSourceError timeouts, connection errors, 429, 5xx
          └── FatalSourceError     other 4xx, auth, bad query, bad result shape
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConfigError", "DefinitionError", "OkrError", "Problem", "StoreUnavailableError"]


class OkrError(Exception):
    """Base of every error okr-pipeline raises on purpose."""


class ConfigError(OkrError):
    """The user must fix a file or a setting; the message says what and how."""


class StoreUnavailableError(ConfigError):
    """The store cannot be opened, read or written: a setup problem, not a bug.

    Unreachable server, refused credentials, missing database or driver, unknown URL scheme,
    unwritable folder, read-only or full disk. The message is one line that names the
    setting (``OKR_STORE_URL``), shows the store URL masked and says how to fix it; the
    driver's error is chained as ``__cause__``.
    """


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in an OKR definition file.

    Attributes:
        file: The file the problem is in, or None when it is not about one file.
        loc: Where in the file, e.g. ``objectives[0].key_results[2].target``; "" for the
            whole file.
        line: 1-based line number, when known.
        message: What is wrong and, where possible, how to fix it.
    """

    file: Path | None
    loc: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        loc = f"{self.loc}: " if self.loc else ""
        return f"{where}{loc}{self.message}"


class DefinitionError(ConfigError):
    """OKR definition files that do not validate.

    Attributes:
        problems: Every problem found, across all files, in file and line order.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{count} {noun} in OKR definitions:"]
        lines.extend(f"  {problem}" for problem in self.problems)
        super().__init__("\n".join(lines))

"""The progress line of long commands (``okr run``, ``backfill``, ``demo``).

A spinner (a bar when the steps are counted), what is being done, and the time so far:
``starting Prefect``, ``fetching 8 KRs``, ``storing the results``; ``okr backfill`` and the
demo's history count their runs (``as of 2026-10-01 (3/12) · fetching 8 KRs``). The line
goes away when the work is done, so only the command's output remains.

Shown only when both stdout and stderr are terminals: piped, redirected or captured (tests,
``okr run | tee``), nothing but the output is written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from okr_pipeline.run.progress import listening

#: Set once a flow ran in this process: Prefect (and its temporary API) is up then.
_state = {"flow_started": False}


def without_prefect() -> None:
    """This process runs its updates without Prefect: no "starting Prefect" to show."""
    _state["flow_started"] = True


class WorkProgress:
    """What a long command shows while it works; does nothing when not shown.

    Attributes:
        console: Print through this while the progress line is up (it keeps the line below
            what is printed).
    """

    def __init__(self, console: Console, live: Progress | None) -> None:
        self._live = live
        self.console = live.console if live is not None else console
        self._task: TaskID | None = None
        self._step = ""
        self._counted = False
        if live is not None:
            self._task = live.add_task("starting", total=None)

    @property
    def shown(self) -> bool:
        """True when the progress line is on screen."""
        return self._live is not None

    def step(self, text: str, done: int = 0, total: int | None = None) -> None:
        """Start a step: its words, and ``done`` of ``total`` when it counts (a bar)."""
        self._step = f"{text} ({done}/{total})" if total else text
        self._counted = bool(total)
        self._update(self._step, done, total)

    def detail(self, phase: str, done: int = 0, total: int | None = None) -> None:
        """What the run inside the current step is doing (``fetching 12/40 KRs``).

        A counted phase (the fetch) fills the bar, unless the step counts its own steps (a
        backfill's as-ofs): then its words only. A phase without a count empties the bar
        back to a pulse.
        """
        text = f"{self._step} · {phase}" if self._step else phase
        if self._counted:
            self._update(text, None, None)
        else:
            self._update(text, done if total else 0, total, counted=True)

    def demo(self, phase: str, done: int, total: int | None) -> None:
        """The demo's own steps (``demo.project.DemoProgress``); its runs' phases follow."""
        self.step(phase, done, total)
        if total and done == 0 and not _state["flow_started"]:
            self.detail("starting Prefect")  # its first run waits for Prefect's API
        elif total and done > 0:
            _state["flow_started"] = True

    @contextmanager
    def runs_inside(self) -> Iterator[None]:
        """Show the phases of every run the block makes (the demo's backfill)."""
        with listening(self.detail):
            yield

    def stop(self) -> None:
        """Take the progress line away now (before printing what the work found)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _update(
        self, text: str, done: int | None, total: int | None, *, counted: bool = False
    ) -> None:
        if self._live is None or self._task is None:
            return
        if done is None:
            self._live.update(self._task, description=text)
            return
        if total is None:
            # Rich's update() keeps the total it has when given None: back to a pulse here.
            self._live.update(self._task, description=text, completed=0)
            for task in self._live.tasks:
                if task.id == self._task:  # a bar filled to its end is "finished": not now
                    task.total = None
                    task.finished_time = None
        else:
            self._live.update(self._task, description=text, completed=done, total=total)
        if counted:
            # The fetch may take less than a refresh: show each count as it comes.
            self._live.refresh()

    @contextmanager
    def flow_run(self) -> Iterator[None]:
        """Around one call of the update flow: the run's phases meanwhile.

        "starting Prefect" the first time in this process (the flow waits for its API);
        then what :mod:`okr_pipeline.run.progress` reports.
        """
        if not _state["flow_started"]:
            self.detail("starting Prefect")
        with listening(self.detail):
            yield
        _state["flow_started"] = True


def progress_wanted(console: Console) -> bool:
    """Show progress only on a terminal: stdout (this console) and stderr both."""
    return console.is_terminal and sys.stderr.isatty()


@contextmanager
def work_progress(console: Console, *, enabled: bool | None = None) -> Iterator[WorkProgress]:
    """A progress line for the block, on ``console``, when it is a terminal.

    Args:
        console: Where the command prints.
        enabled: Force it on or off (default: :func:`progress_wanted`).
    """
    if not (progress_wanted(console) if enabled is None else enabled):
        yield WorkProgress(console, None)
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as live:
        yield WorkProgress(console, live)

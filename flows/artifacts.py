"""What a run shows in the Prefect UI: a results table, a digest and a fetch progress bar.

- ``okr-run-results`` (table): one row per KR measured, worst status first.
- ``okr-run-digest`` (markdown): the KRs that need a look (failing, off track, stale, at
  risk, no data) with their reasons, grouped by objective, each linked to its page on the
  dashboard when ``report_url`` is set.
- ``okr-fetch-progress`` (progress): how many of the run's KRs are fetched, updated at
  most once a second while the sources answer (see ``run.fetch.fetch_all``).

Texts pass through the one redactor and are cut short: a reason holds a source's error
message, which must never carry a secret into the Prefect database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from okr_pipeline.okr_core.alerting.messages import kr_page_url
from okr_pipeline.okr_core.redaction import redact_text, truncate
from okr_pipeline.run.summary import RunSummary

RESULTS_KEY = "okr-run-results"
DIGEST_KEY = "okr-run-digest"
PROGRESS_KEY = "okr-fetch-progress"
MAX_TABLE_ROWS = 1000
#: KRs listed in the digest; a run where thousands fail says so in a line, not a page.
MAX_DIGEST_KRS = 200
MAX_REASON_CHARS = 300

#: The statuses the digest lists, worst first, with the word it shows.
NEEDS_A_LOOK: dict[str, str] = {
    "error": "🟠 failing",
    "off_track": "🔴 off track",
    "stale": "🟣 stale",
    "at_risk": "🟡 at risk",
    "no_data": "⚪ no data",
}

_MARKDOWN = re.compile(r"([\\`*_\[\]<>|#])")
log = logging.getLogger(__name__)


def _escape(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def _reason(text: str | None) -> str:
    if not text:
        return ""
    return _escape(truncate(redact_text(" ".join(text.split())), MAX_REASON_CHARS))


def _counts(summary: RunSummary) -> str:
    order = [*NEEDS_A_LOOK, "on_track"]
    counts = sorted(
        summary.statuses.items(),
        key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
    )
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts) or "none"


def _kr_line(row: dict[str, Any], report_url: str | None) -> str:
    ref = f"{row['objective']}/{row['id']}"
    name = f"[`{row['id']}`]({kr_page_url(report_url, ref)})" if report_url else f"`{row['id']}`"
    facts = []
    if row.get("value") is not None:
        facts.append(f"value {row['value']}")
    if row.get("target") is not None:
        facts.append(f"target {row['target']}")
    if row.get("score") is not None:
        facts.append(f"score {row['score']:.2f}")
    line = f"- {NEEDS_A_LOOK[row['status']]} {name}"
    if facts:
        line += f" ({', '.join(facts)})"
    reason = _reason(row.get("reason"))
    return line + (f": {reason}" if reason else "")


def _grouped(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    # Objectives in the order of their worst KR (the rows come worst first).
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["objective"]), []).append(row)
    return groups


def digest_markdown(summary: RunSummary, report_url: str | None) -> str:
    """The run's digest: what needs a look, grouped by objective, as Markdown.

    Args:
        summary: What the run did (its rows come worst first).
        report_url: The dashboard (``Settings.report_url``), or None for no links.

    Returns:
        Markdown for a Prefect markdown artifact.
    """
    when = summary.as_of.isoformat(timespec="seconds")
    lines = [
        f"# OKRs as of {when}",
        "",
        f"{summary.measured} of {summary.active} KRs measured"
        + (" (dry run: nothing stored)" if summary.dry_run else "")
        + f": {_counts(summary)}.",
    ]
    if report_url:
        lines += ["", f"[Open the dashboard]({report_url})"]
    flagged = [row for row in summary.rows if row["status"] in NEEDS_A_LOOK]
    if not flagged:
        done = "Every KR measured in this run is on track." if summary.rows else "Nothing was due."
        lines += ["", done]
        return "\n".join(lines) + "\n"
    shown = flagged[:MAX_DIGEST_KRS]
    for objective, rows in _grouped(shown).items():
        lines += ["", f"## {_escape(objective)}", ""]
        lines += [_kr_line(row, report_url) for row in rows]
    if len(flagged) > len(shown):
        lines += ["", f"… and {len(flagged) - len(shown)} more KRs that need a look."]
    return "\n".join(lines) + "\n"


def publish_results(summary: RunSummary, report_url: str | None = None) -> None:
    """Publish the run's results table and its digest as Prefect artifacts.

    Args:
        summary: What the run did.
        report_url: The dashboard, linked from the digest (None: no links).
    """
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.statuses.items()))
    shown = summary.rows[:MAX_TABLE_ROWS]
    more = len(summary.rows) - len(shown)
    create_table_artifact(
        [{**row, "reason": _reason(row.get("reason"))} for row in shown]
        or [{"objective": "", "id": "", "status": "nothing due"}],
        key=RESULTS_KEY,
        description=(
            f"{summary.measured} of {summary.active} KRs measured as of "
            f"{summary.as_of.isoformat(timespec='seconds')}: {counts or 'none'}; "
            f"{summary.errors} failed" + (f"; {more} more rows not shown" if more else "")
        ),
    )
    flagged = sum(1 for row in summary.rows if row["status"] in NEEDS_A_LOOK)
    create_markdown_artifact(
        digest_markdown(summary, report_url),
        key=DIGEST_KEY,
        description=f"{flagged} of {summary.measured} KRs need a look",
    )


class FetchProgress:
    """A progress artifact for the fetch step, created on the second count it is told.

    Call it with ``(done, total)``; ``fetch_all`` already calls at most once a second. Its
    first count comes as the fetch starts and is not shown: the artifact is created on the
    next one (a second later, or the last), so a fetch shorter than a second costs one API
    call, not two, and none while the lanes take their connections' slots from the same
    server. A Prefect API that fails here is logged once and never fails the run: the bar
    is a view.
    """

    def __init__(self) -> None:
        self.artifact_id: UUID | None = None
        self._started = False
        self._broken = False

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` KRs fetched (from the second call on)."""
        if self._broken:
            return
        if not self._started:
            self._started = True
            return
        percent = 100.0 if total <= 0 else round(100.0 * done / total, 1)
        description = f"{done} of {total} KRs fetched"
        try:
            if self.artifact_id is None:
                created = create_progress_artifact(
                    percent, key=PROGRESS_KEY, description=description
                )
                self.artifact_id = cast(UUID, created)  # sync here: we are not in a loop
            else:
                update_progress_artifact(self.artifact_id, percent, description=description)
        except Exception as exc:  # noqa: BLE001 - a progress bar must never fail a run
            self._broken = True
            log.warning(
                "The fetch progress artifact could not be updated: %s", redact_text(str(exc))
            )

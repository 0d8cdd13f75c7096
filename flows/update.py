"""The ``update_key_results`` flow: one run of :mod:`okr_pipeline.run.update` on Prefect.

The flow is thin on purpose: a handful of task runs whatever the number of KRs (a Prefect
task run costs milliseconds; a KR's query costs a fraction of one), each step a plain
function of :mod:`okr_pipeline.run` that the tests also call without Prefect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, get_type_hints

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.utilities.annotations import quote

from okr_pipeline.flows.artifacts import FetchProgress, publish_results
from okr_pipeline.flows.blocks import resolve_blocks
from okr_pipeline.flows.limits import connection_limits
from okr_pipeline.flows.parameters import plain_flow
from okr_pipeline.flows.shards import run_shard_jobs
from okr_pipeline.notify.events import emit_transition_events
from okr_pipeline.okr_core.alerting.routing import RoutingConfig
from okr_pipeline.okr_core.redaction import redact_text
from okr_pipeline.okr_core.settings import Settings, load_settings
from okr_pipeline.okr_store.records import EvaluationRecord, StoredKeyResult
from okr_pipeline.okr_store.store import Store
from okr_pipeline.run.alerting import AlertSummary, run_alerts
from okr_pipeline.run.fetch import FetchResult, ResultsHook, SourcePool
from okr_pipeline.run.progress import chained, fetch_counts
from okr_pipeline.run.steps import (
    evaluate_and_store,
    fetch_values,
    load_key_results,
    measure_baselines,
)
from okr_pipeline.run.summary import RunSummary
from okr_pipeline.run.update import RunRequest, Steps, run_update


class _Unseen:
    """A task's return value, kept out of Prefect's sight (see :func:`as_task`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def as_task(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a Prefect task run, its arguments and result unseen by Prefect.

    Prefect visits every item of a task's inputs to track dependencies, and every item
    of its result to link it to the task run; over lists of 10,000 KRs that costs more
    than the queries themselves. ``quote`` hides the inputs, a plain box the result, and
    the task receives and returns the values unchanged.
    """

    @functools.wraps(function)
    def boxed(*args: Any, **kwargs: Any) -> _Unseen:
        return _Unseen(function(*args, **kwargs))

    runnable = task(name=name, cache_policy=NO_CACHE)(boxed)

    def call(*args: Any, **kwargs: Any) -> Any:
        box = runnable(
            *(quote(arg) for arg in args), **{key: quote(value) for key, value in kwargs.items()}
        )
        return box.value

    return call


def fetch_with_progress(
    krs: list[StoredKeyResult],
    settings: Settings,
    as_of: datetime,
    pool: SourcePool,
    clock: Callable[[], datetime],
    on_results: ResultsHook | None = None,
) -> list[FetchResult]:
    """The fetch step, showing how far it got as a Prefect progress artifact.

    The counts go to :mod:`okr_pipeline.run.progress` too, for the CLI's progress bar;
    ``on_results`` is given each batch of values as it arrives (see ``run/recorder.py``).
    """
    progress = chained(FetchProgress(), fetch_counts)
    limits = connection_limits(settings)
    return fetch_values(
        krs,
        settings,
        as_of,
        pool,
        clock,
        progress=progress,
        limits=limits,
        on_results=on_results,
    )


def baselines_within_limits(
    krs: list[StoredKeyResult],
    settings: Settings,
    store: Store | None,
    pool: SourcePool,
    now: datetime,
    clock: Callable[[], datetime],
) -> list[StoredKeyResult]:
    """The auto-baselines step, its queries within the connections' shared limits."""
    limits = connection_limits(settings)
    return measure_baselines(krs, settings, store, pool, now, clock, limits=limits)


def send_alerts(
    krs: list[StoredKeyResult],
    evaluations: list[EvaluationRecord],
    results: list[FetchResult],
    *,
    store: Store,
    settings: Settings,
    routing: RoutingConfig,
    run_id: int | None,
    now: datetime,
    dry_run: bool,
) -> AlertSummary:
    """The run's alert step, emitting a Prefect event for each alert transition sent."""
    return run_alerts(
        krs,
        evaluations,
        results,
        store=store,
        settings=settings,
        routing=routing,
        run_id=run_id,
        now=now,
        dry_run=dry_run,
        emit_events=emit_transition_events,
    )


def _mark_orphaned(flow_run_ids: list[str]) -> None:
    """Set the Prefect flow runs of crashed runs to Crashed (they were left Running)."""
    if flow_run_ids:
        from okr_pipeline.flows.prefect_server import mark_orphaned_flow_runs

        mark_orphaned_flow_runs(flow_run_ids)


_publish = as_task("publish-results", publish_results)

#: The run's steps as task runs; each sends its own state to the Prefect API.
TASK_STEPS = Steps(
    load=as_task("load-definitions", load_key_results),
    baselines=as_task("measure-auto-baselines", baselines_within_limits),
    fetch=as_task("fetch-values", fetch_with_progress),
    evaluate_and_store=as_task("evaluate-and-store", evaluate_and_store),
    alerts=as_task("send-alerts", send_alerts),
    publish=_publish,
    mark_crashed=_mark_orphaned,
    resolve_settings=resolve_blocks,
    run_shards=run_shard_jobs,
)


def flow_steps(report_url: str | None) -> Steps:
    """:data:`TASK_STEPS`, the run's digest artifact linking to the dashboard at ``report_url``."""
    if not report_url:
        return TASK_STEPS

    def publish(summary: RunSummary) -> None:
        _publish(summary, report_url=report_url)

    return replace(TASK_STEPS, publish=publish)


def write_run_report(settings: Settings) -> None:
    """Write the HTML report into ``settings.report_dir``; a failure is logged, not raised.

    The report is a view of what the run stored: the run has succeeded by now, and a full
    disk or an unwritable folder must not turn it into a failed one.
    """
    logger = get_run_logger()
    try:
        from okr_pipeline.web.report import write_report

        written = write_report(settings)
    except Exception as exc:  # noqa: BLE001 - the run's results are stored already
        logger.warning("The report could not be written: %s", redact_text(str(exc)))
        return
    logger.info("Report written to %s", written.html)


@plain_flow(name="update-key-results", log_prints=False)
def update_key_results(
    project_dir: str = ".",
    kr: list[str] | None = None,
    as_of: datetime | None = None,
    dry_run: bool = False,
    all_krs: bool = False,
    backfill: bool = False,
    replace_existing: bool = False,
    allow_future: bool = False,
    shards: int | None = None,
) -> RunSummary:
    """Measure the KRs that are due (or the ones named), score them and store the results.

    A KR has one measurement per as-of: measuring an as-of again replaces it.

    Args:
        project_dir: The project folder (holds ``okrs/``, ``.env`` and ``okr.toml``).
        kr: Measure only these KRs (``objective/kr`` or a unique KR id), due or not.
        as_of: Evaluate as of this time instead of now (sources receive it as ``:as_of``).
        dry_run: Fetch and score, but store nothing.
        all_krs: Measure every active KR, due or not.
        backfill: Measure a past as-of: only sources that take an as-of, no alerts, and
            KRs that already have a value then are skipped unless ``replace_existing``.
        replace_existing: With ``backfill``, measure again what is already there.
        allow_future: Accept an ``as_of`` in the future.
        shards: Split the run into this many shards, each a flow run of the deployment
            ``measure-shard/okr-shard`` (default: ``shards.count`` of the settings; 1: not
            split; see ``flows/shards.py``).
    """
    ctx = FlowRunContext.get()
    flow_run = ctx.flow_run if ctx else None
    request = RunRequest(
        project_dir=Path(project_dir),
        kr=tuple(kr or ()),
        as_of=as_of,
        dry_run=dry_run,
        all_krs=all_krs,
        backfill=backfill,
        replace_existing=replace_existing,
        allow_future=allow_future,
        shards=shards,
    )
    settings = load_settings(request.project_dir)
    summary = run_update(
        request,
        steps=flow_steps(settings.report_url),
        settings=settings,
        flow_run_id=str(flow_run.id) if flow_run else None,
        expected_start=flow_run.expected_start_time if flow_run else None,
    )
    if summary.errors:
        get_run_logger().warning(
            "%d of %d KRs failed to measure; see 'okr status'", summary.errors, summary.measured
        )
    if settings.report_dir is not None and not dry_run:
        as_task("write-report", write_run_report)(settings)
    return summary


def run_here(flow: Callable[..., Any], **parameters: Any) -> Any:
    """Call a Prefect flow in this process, without Prefect's flow-run heartbeat thread.

    That thread sleeps in one-second steps and is joined when the run ends, so it made
    every run up to a second longer (about 1 s for a small one). What it is for, telling
    Prefect that a run whose process died has crashed, okr's run lease does for these
    runs: the next run finds the run whose lease ran out and sets its Prefect flow run to
    Crashed (``run/record.py``). Flow runs that Prefect starts (``okr serve``, workers,
    shards) keep their heartbeats.

    Args:
        flow: The flow.
        parameters: Its parameters, and Prefect's call options (``return_state``).

    Returns:
        What the flow call returns.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow(**parameters)


def update_here(**parameters: Any) -> Any:
    """Run :func:`update_key_results` in this process, as ``okr run`` does (:func:`run_here`).

    Args:
        parameters: The flow's parameters, and Prefect's call options (``return_state``).

    Returns:
        What the flow call returns: the run's summary, or its final state.
    """
    return run_here(update_key_results, **parameters)


# Prefect's runner pickles a flow of an editable install by value, and its copy of the
# module's globals holds only what the body uses: the string annotations (``from __future__
# import annotations``) could no longer be resolved, failing every served run's parameter
# validation ("define `datetime`"). Resolved once here, they travel as types wherever the
# flow goes (okr serve, deployments).
update_key_results.fn.__annotations__ = get_type_hints(update_key_results.fn)

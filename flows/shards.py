"""Sharded runs on Prefect: one ``measure-shard`` flow run per shard, on a work pool's workers.

The parent (``update_key_results`` with ``[shards] count`` above 1) hands
:func:`run_shard_jobs` to :func:`okr_pipeline.run.update.run_update`, which calls it with the
run's shard jobs (:mod:`okr_pipeline.run.shards`). Each job becomes a flow run of the
deployment ``measure-shard/okr-shard`` (``prefect.yaml``) started with Prefect's
``run_deployment``, linked to the parent as a subflow; any worker of the deployment's work
pool picks it up. The parent waits for them all; a shard whose flow run ends Crashed, Failed
or Cancelled is started again once (on whichever worker is left), and the one that fails
again is reported, its KRs stored as errors by the parent.

A shard whose machine dies leaves its flow run Running: nothing is left to report the end.
Prefect notices it by the flow run's heartbeats (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, set
for the shard deployment in ``prefect.yaml``): the parent makes sure the automation
:data:`CRASH_AUTOMATION` exists, which sets a shard's flow run to Crashed once it has been
silent for :data:`SILENCE` since it started or since its last heartbeat (Prefect's
documented zombie-flow automation, limited to this flow).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, get_type_hints
from uuid import UUID

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError, ObjectNotFound

from okr_pipeline.flows.parameters import plain_flow
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings, load_settings
from okr_pipeline.run.shards import ShardFailures, ShardJob, run_shard

SHARD_FLOW = "measure-shard"
SHARD_DEPLOYMENT_NAME = "okr-shard"
SHARD_DEPLOYMENT = f"{SHARD_FLOW}/{SHARD_DEPLOYMENT_NAME}"
"""The deployment each shard runs as (``prefect.yaml``); never ``okr-update`` nor ``okr-serve``."""

CRASH_AUTOMATION = "okr-shard-crashed"
"""The automation that sets a shard's flow run to Crashed when its heartbeats stop."""

SILENCE = timedelta(seconds=90)
"""How long a shard's flow run may go without a heartbeat: three of the deployment's 30 s."""

ATTEMPTS = 2
"""A shard's flow run is started at most this many times."""

POLL_SECONDS = 2.0
WAIT_NOTICE_SECONDS = 60.0


@plain_flow(name=SHARD_FLOW, log_prints=False)
def measure_shard(
    project_dir: str,
    run_id: int,
    as_of: datetime,
    shard: int,
    shards: int,
    kr_ids: list[int],
) -> dict[str, int]:
    """Measure, score and store one shard of a sharded run (started by the parent run).

    Args:
        project_dir: The project folder (holds ``okrs/``, ``.env`` and ``okr.toml``).
        run_id: The parent's run in the store; the values are stored under it.
        as_of: The run's as-of.
        shard: This shard's index, from 0.
        shards: How many shards the run has.
        kr_ids: The store ids of this shard's KRs.
    """
    # Here, not at the top: flows/update.py imports this module for the parent's side.
    from dataclasses import replace

    from okr_pipeline.flows.update import TASK_STEPS

    ctx = FlowRunContext.get()
    flow_run = ctx.flow_run if ctx else None
    job = ShardJob(project_dir, run_id, as_of, shard, shards, tuple(kr_ids))
    settings = load_settings(Path(project_dir))
    outcomes = run_shard(
        job,
        steps=replace(TASK_STEPS, run_shards=None),
        settings=settings,
        flow_run_id=str(flow_run.id) if flow_run else None,
    )
    get_run_logger().info(
        "%s: %d KRs stored (%s)",
        job.name,
        sum(n for key, n in outcomes.items() if key != "skipped"),
        ", ".join(f"{key} {n}" for key, n in sorted(outcomes.items())) or "none to measure",
    )
    return dict(outcomes)


# As for update_key_results: the annotations travel as types wherever the flow goes.
measure_shard.fn.__annotations__ = get_type_hints(measure_shard.fn)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def check_shard_deployment(settings: Settings) -> str:
    """The shard deployment's work pool, checked against ``shards.work_pool``.

    Raises:
        ConfigError: there is no such deployment, or it runs on another pool than the
            settings name.
    """
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(SHARD_DEPLOYMENT)
        except ObjectNotFound:
            raise ConfigError(
                f"shards.count is {settings.shards.count} but Prefect has no deployment "
                f"'{SHARD_DEPLOYMENT}': run 'prefect deploy --all' with the project's "
                "prefect.yaml (okr init writes it), or set shards.count = 1"
            ) from None
    pool = deployment.work_pool_name or ""
    wanted = settings.shards.work_pool
    if wanted and pool != wanted:
        raise ConfigError(
            f"shards.work_pool is '{wanted}' but the deployment '{SHARD_DEPLOYMENT}' runs on "
            f"work pool '{pool or 'none'}': change one of them (okr.toml or prefect.yaml)"
        )
    return pool


def ensure_crash_detection() -> None:
    """Create :data:`CRASH_AUTOMATION`, or bring the server's copy up to date."""
    from prefect.automations import Automation

    wanted = crash_automation()
    # Synchronous here (no event loop runs in a flow's thread), though typed as either.
    try:
        found: Automation = Automation.read(name=CRASH_AUTOMATION)  # type: ignore[assignment]
    except ValueError:  # not found
        _ = wanted.create()
        return
    if found.trigger == wanted.trigger and found.actions == wanted.actions:
        return
    # Made by an earlier version (which waited for a first heartbeat): updated in place.
    found.description, found.trigger, found.actions = (
        wanted.description,
        wanted.trigger,
        wanted.actions,
    )
    found.update()


def crash_automation() -> Any:
    """The automation that sets a shard's flow run to Crashed once it falls silent.

    Its clock starts when the flow run starts (the ``Running`` state's event) and again at
    each heartbeat: a shard whose process dies before its first heartbeat is caught too.
    """
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    ends = ("Completed", "Failed", "Cancelled", "Crashed")
    return Automation(
        name=CRASH_AUTOMATION,
        description="Mark a shard of an okr-pipeline run Crashed when it falls silent "
        "(its machine or process died); the parent run then starts it again.",
        trigger=EventTrigger(
            after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{end}" for end in ends)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": SHARD_FLOW}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=SILENCE,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {SILENCE.total_seconds():.0f} s: the shard's "
                "process or machine is gone.",
            )
        ],
    )


def _start(job: ShardJob, attempt: int, parent: str) -> UUID:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    suffix = "" if attempt == 1 else f"-attempt-{attempt}"
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment] # synchronous here
        SHARD_DEPLOYMENT,
        parameters=job.parameters(),
        timeout=0,  # started, not awaited: the parent waits for all shards at once
        flow_run_name=f"{parent}-shard-{job.index + 1}-of-{job.count}{suffix}",
        tags=["okr", "okr-shard"],
    )
    return flow_run.id


def run_shard_jobs(jobs: Sequence[ShardJob], settings: Settings) -> ShardFailures:
    """Run each job as a flow run of :data:`SHARD_DEPLOYMENT`, wait for all, retry once.

    Returns:
        Why each shard that never completed failed, by index (the parent stores its KRs
        as errors).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    pool = check_shard_deployment(settings)
    ensure_crash_detection()
    logger = _logger()
    ctx = FlowRunContext.get()
    parent = ctx.flow_run.name if ctx and ctx.flow_run else "okr-run"
    attempts = {job.index: 1 for job in jobs}
    running: dict[UUID, ShardJob] = {_start(job, 1, parent): job for job in jobs}
    logger.info("started %d shards on work pool '%s'", len(jobs), pool)
    failures: dict[int, str] = {}
    waiting_since = time.monotonic()
    with get_client(sync_client=True) as client:
        while running:
            time.sleep(POLL_SECONDS)
            flow_runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(running)))
            )
            for flow_run in flow_runs:
                state = flow_run.state
                idle = time.monotonic() - waiting_since > WAIT_NOTICE_SECONDS
                if idle and state is not None and state.is_scheduled():
                    # Nobody took it yet: say so once a minute (no worker of the pool runs).
                    waiting_since = time.monotonic()
                    logger.warning(
                        "%s waits for a worker of work pool '%s' (flow run '%s')",
                        running[flow_run.id].name,
                        pool,
                        flow_run.name,
                    )
                if state is None or not state.is_final():
                    continue
                job = running.pop(flow_run.id)
                if state.is_completed():
                    continue
                how = f"ended {state.name} (flow run '{flow_run.name}')"
                if attempts[job.index] < ATTEMPTS:
                    attempts[job.index] += 1
                    logger.warning("%s %s: starting it again", job.name, how)
                    running[_start(job, attempts[job.index], parent)] = job
                else:
                    logger.error("%s %s, %d attempts: its KRs failed", job.name, how, ATTEMPTS)
                    failures[job.index] = f"{how}, {ATTEMPTS} attempts"
    return failures

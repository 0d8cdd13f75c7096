"""What a sharded run checks and sets up on the Prefect server before it starts its shards.

Against the suite's temporary Prefect server: a missing ``okr-shard`` deployment and a work
pool other than ``shards.work_pool`` are one clear error each; the crash-detection
automation is created once (an earlier version's is updated), proactive on the start and
heartbeats of ``measure-shard`` flow runs, and it crashes a shard silent from its start.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from okr_pipeline.flows.shards import (
    CRASH_AUTOMATION,
    SHARD_DEPLOYMENT_NAME,
    SHARD_FLOW,
    SILENCE,
    check_shard_deployment,
    ensure_crash_detection,
    measure_shard,
)
from okr_pipeline.okr_core.errors import ConfigError
from okr_pipeline.okr_core.settings import Settings

pytestmark = pytest.mark.usefixtures("prefect_harness")


def settings(tmp_path: Path, **shards: object) -> Settings:
    return Settings(project_dir=tmp_path, shards={"count": 2, **shards})


@pytest.fixture
def shard_deployment() -> Iterator[str]:
    """The deployment ``measure-shard/okr-shard`` on a work pool of its own; its pool."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        pool = client.create_work_pool(WorkPoolCreate(name="shard-pool", type="process"))
        flow_id = client.create_flow(measure_shard)
        deployment = client.create_deployment(
            flow_id=flow_id,
            name=SHARD_DEPLOYMENT_NAME,
            work_pool_name=pool.name,
            entrypoint="okr_pipeline.flows.shards:measure_shard",
        )
    try:
        yield pool.name
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment)
            client.delete_work_pool(pool.name)


def test_no_shard_deployment_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        check_shard_deployment(settings(tmp_path))
    message = str(raised.value)
    assert f"no deployment '{SHARD_FLOW}/{SHARD_DEPLOYMENT_NAME}'" in message
    assert "prefect deploy --all" in message and "\n" not in message


def test_the_shard_deployment_must_be_on_the_settings_pool(
    tmp_path: Path, shard_deployment: str
) -> None:
    assert check_shard_deployment(settings(tmp_path)) == shard_deployment
    assert check_shard_deployment(settings(tmp_path, work_pool=shard_deployment)) == "shard-pool"
    with pytest.raises(ConfigError, match="runs on work pool 'shard-pool'"):
        check_shard_deployment(settings(tmp_path, work_pool="okr-pool"))


def test_crash_detection_is_created_once() -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import Posture

    ensure_crash_detection()
    ensure_crash_detection()
    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(CRASH_AUTOMATION)
    assert len(found) == 1
    trigger = found[0].trigger
    assert trigger.posture == Posture.Proactive  # type: ignore[union-attr]
    assert trigger.within == SILENCE  # type: ignore[union-attr]
    # Its clock starts with the run, not at a first heartbeat that may never come.
    assert trigger.after == {  # type: ignore[union-attr]
        "prefect.flow-run.Running",
        "prefect.flow-run.heartbeat",
    }
    matched = trigger.match_related  # type: ignore[union-attr]
    related = [spec.root for spec in (matched if isinstance(matched, list) else [matched])]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": SHARD_FLOW} in related
    [action] = found[0].actions
    assert action.type == "change-flow-run-state" and action.state == "CRASHED"  # type: ignore[union-attr]


def test_crash_detection_of_an_earlier_version_is_updated() -> None:
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client

    from okr_pipeline.flows.shards import crash_automation

    with get_client(sync_client=True) as client:
        for found in client.read_automations_by_name(CRASH_AUTOMATION):
            client.delete_automation(found.id)
    earlier = crash_automation()
    earlier.trigger.after = {"prefect.flow-run.heartbeat"}  # as the first version made it
    earlier.create()
    ensure_crash_detection()
    updated = Automation.read(name=CRASH_AUTOMATION)
    assert updated.trigger.after == crash_automation().trigger.after  # type: ignore[union-attr]
    with get_client(sync_client=True) as client:
        assert len(client.read_automations_by_name(CRASH_AUTOMATION)) == 1


def test_a_shard_silent_from_its_start_is_marked_crashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A shard whose process dies before its first heartbeat: Running, then nothing.
    import time
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from okr_pipeline.flows import shards

    monkeypatch.setattr(shards, "SILENCE", timedelta(seconds=10))  # 90 s in production
    with get_client(sync_client=True) as client:
        for found in client.read_automations_by_name(CRASH_AUTOMATION):
            client.delete_automation(found.id)
    ensure_crash_detection()
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(measure_shard, name="silent-shard")
        client.set_flow_run_state(flow_run.id, Running(), force=True)
        deadline = time.monotonic() + 90
        state = client.read_flow_run(flow_run.id).state
        while state is not None and state.is_running() and time.monotonic() < deadline:
            time.sleep(1)
            state = client.read_flow_run(flow_run.id).state
        for found in client.read_automations_by_name(CRASH_AUTOMATION):
            client.delete_automation(found.id)  # its 10 s are for this test only
    assert state is not None and state.is_crashed(), state

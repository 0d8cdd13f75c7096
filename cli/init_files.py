"""The files ``okr init`` writes: a project that validates and runs with no connection at all.

The templates are text here (no package data to map). ``prefect.yaml`` is the one source of
the repository's own ``prefect.yaml`` too, made with ``{{ $PWD }}`` for the folder (a test
keeps them equal).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

__all__ = ["REPOSITORY_FOLDER", "prefect_yaml", "project_files", "quarter_of"]

REPOSITORY_FOLDER = "{{ $PWD }}"
"""The folder of the repository's own prefect.yaml: wherever ``prefect deploy`` runs."""

_PREFECT_YAML = """\
# Prefect deployments of okr-pipeline's update flow and its shards (written by `okr init`).
# From the project folder: `prefect work-pool create okr-pool --type process`,
# `prefect deploy --all`, then `prefect worker start --pool okr-pool`.
# The worker needs okr-pipeline installed and the OKR_* settings in its environment
# (or a .env / okr.toml in the project folder); see the README, "Running on Prefect".
# `okr serve` serves a deployment of its own, `okr-serve`: the two never touch each other.
name: okr-pipeline
prefect-version: 3.4.0

build: null
push: null

# The worker runs the flow in the project folder, which holds okrs/ (and optionally .env
# and okr.toml). A worker on another machine: put the folder's path there instead.
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: __DIRECTORY__

deployments:
  - name: okr-update
    description: Measure the key results that are due, score them and store the results.
    # A module path: works from any project folder once okr-pipeline is installed.
    entrypoint: okr_pipeline.flows.update:update_key_results
    parameters:
      project_dir: "."
    work_pool:
      name: okr-pool
    schedules:
      # Every 15 minutes; each run measures only the KRs whose own schedule is due.
      - cron: "*/15 * * * *"
        timezone: UTC
        active: true
    # One run at a time: a run scheduled while the last one still runs is cancelled,
    # so that a slow source cannot pile up overlapping runs.
    concurrency_limit:
      limit: 1
      collision_strategy: CANCEL_NEW
    tags: [okr]

  # One shard of a run split over several workers ([shards] count in okr.toml): the runs of
  # okr-update start one flow run of it per shard and wait for them. No schedule of its own.
  - name: okr-shard
    description: Measure, score and store one shard of a sharded okr-update run.
    entrypoint: okr_pipeline.flows.shards:measure_shard
    work_pool:
      name: okr-pool     # okr.toml's shards.work_pool, if set, must name this pool
      job_variables:
        env:
          # Heartbeats let the Prefect server mark a shard whose machine died Crashed
          # (after 90 s without one); the parent run then starts the shard again.
          PREFECT_FLOWS_HEARTBEAT_FREQUENCY: "30"
    tags: [okr, okr-shard]
"""

_OKRS = """\
# Your OKRs: one cycle and its objectives. `okr validate` checks this file, `okr schema`
# prints the format's JSON Schema, and the README's "OKR files reference" lists every key.
cycle:
  name: {name}
  start: {start}
  end: {end}               # inclusive
  timezone: UTC

objectives:
  - id: first-objective    # stable: history is kept by id, titles may change
    title: Ship the first OKRs
    owner: you@example.com
    key_results:
      # A manual KR: people check values in (`okr checkin first-objective/teams-onboarded 1`
      # or the dashboard's form). It needs no connection.
      - id: teams-onboarded
        title: Teams tracking their OKRs from 0 to 5
        baseline: 0
        target: 5
        schedule: "0 9 * * 1"  # a check-in is expected weekly (drives staleness)
        source: {{type: manual}}
      - id: dashboard-shared
        title: Dashboard shared with the team
        kind: milestone        # check in 1 when done
        source: {{type: manual}}
      # A KR measured by SQL: define the connection (OKR_CONNECTIONS__WAREHOUSE__URL in .env,
      # see .env.example), then uncomment it.
      # - id: weekly-signups
      #   title: Signups this cycle from 100 to 150
      #   unit: signups
      #   kind: increase       # said, since an auto baseline is not known in advance
      #   baseline: auto       # the query's value at the cycle's start, measured once
      #   target: 150
      #   schedule: "0 6 * * *"
      #   source:
      #     type: sql
      #     connection: warehouse
      #     query: >
      #       SELECT count(*) FROM signups
      #       WHERE created_at >= :cycle_start AND created_at < :as_of
"""

_OKR_TOML = """\
# Settings of this project. The environment and .env come first; secrets belong in .env
# (or the environment, or Prefect blocks), never here. See the README, "Settings and secrets".

# store_url = "postgresql+psycopg://okr@db.internal/okr"   # default: SQLite in .okr/okr.db
# okr_path = "okrs"                                        # where the OKR files are
# alerts_path = "alerts.yaml"
# max_concurrency = 16                                     # sources fetched at once
# stale_after_periods = 3
# report_url = "https://okr.example.com"                   # links in alerts and artifacts

# [connections.warehouse]
# url = "postgresql+psycopg://reader@warehouse.internal/analytics"  # password: in .env
# max_concurrency = 4
# timeout_seconds = 30

# [ui]
# host = "127.0.0.1"
# port = 8400

# [shards]                 # split each run over the workers of a Prefect work pool
# count = 4                # shards per run (1: not split); needs prefect.yaml's okr-shard
# work_pool = "okr-pool"   # checked against the okr-shard deployment's pool
"""

_ENV_EXAMPLE = """\
# Copy to .env (which .gitignore keeps out of git) and fill in what you use.
# Variables start with OKR_; __ nests: OKR_CONNECTIONS__WAREHOUSE__URL is
# connections.warehouse.url in okr.toml.

# Where runs store values (default: SQLite in .okr/okr.db in this folder).
# OKR_STORE_URL=postgresql+psycopg://okr:PASSWORD@db.internal/okr

# A connection that `sql` KRs name (connection: warehouse), with its password.
# OKR_CONNECTIONS__WAREHOUSE__URL=postgresql+psycopg://reader:PASSWORD@warehouse.internal/analytics

# A secret that sources and alert channels name (${secret:slack_token}).
# OKR_SECRETS__SLACK_TOKEN=xoxb-...

# Who may check values in on the dashboard: the hash `okr ui hash` prints (never the token).
# OKR_UI__TOKEN_HASH=

# Where people open the dashboard: alerts and Prefect artifacts link each KR to <url>/kr/<ref>.
# OKR_REPORT_URL=https://okr.example.com
"""

_ALERTS_YAML = """\
# Where alerts go. Without channels they are recorded, not sent: `okr alerts` lists them.
# See the README, "Alerts". Channels are Apprise URLs; ${secret:NAME} comes from
# OKR_SECRETS__NAME.
defaults:                  # for every KR; a KR's own `alerts:` key overrides them
  pending_evaluations: 2
  repeat_interval: 3d
# routes:                  # first match on the owner wins
#   - name: team
#     owners: ["you@example.com"]
#     channels: ["slack://${secret:slack_token}/#okrs"]
default_route:
  channels: []
"""

_GITIGNORE = """\
# The store and run files okr writes, and the secrets.
.okr/
.env
"""


def quarter_of(day: date) -> tuple[str, date, date]:
    """The calendar quarter holding ``day``: its name (``2026-Q4``), first and last day."""
    index = (day.month - 1) // 3
    start = date(day.year, 3 * index + 1, 1)
    next_start = date(day.year + 1, 1, 1) if index == 3 else date(day.year, 3 * index + 4, 1)
    return f"{day.year}-Q{index + 1}", start, next_start - timedelta(days=1)


def prefect_yaml(directory: str) -> str:
    """The ``prefect.yaml`` of a project whose folder is ``directory``.

    Args:
        directory: Where the worker runs the flow: the project folder's absolute path, or
            :data:`REPOSITORY_FOLDER` (the folder ``prefect deploy`` runs in).

    Returns:
        The file's text.
    """
    # A JSON string is a YAML double-quoted scalar: any path is quoted and escaped right.
    return _PREFECT_YAML.replace("__DIRECTORY__", json.dumps(directory))


def project_files(today: date, folder: Path) -> dict[str, str]:
    """The files of a new project, by path relative to its folder, in the order written.

    Args:
        today: The day the project is made: its example cycle is this quarter.
        folder: The project folder, absolute: the worker of prefect.yaml runs there.

    Returns:
        Path -> text.
    """
    name, start, end = quarter_of(today)
    return {
        "okrs/okrs.yaml": _OKRS.format(name=name, start=start, end=end),
        "okr.toml": _OKR_TOML,
        ".env.example": _ENV_EXAMPLE,
        "alerts.yaml": _ALERTS_YAML,
        "prefect.yaml": prefect_yaml(str(folder)),
        ".gitignore": _GITIGNORE,
    }

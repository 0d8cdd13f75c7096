"""The demo's OKR files, modelled on the classic examples of the OKR method."""

from __future__ import annotations

from datetime import date

PODCASTS = """\
# Demo OKRs: podcast discovery (the classic example) and support excellence.
# Each KR names a metric source; 'okr validate' checks this file, 'okr schema' describes it.
cycle:
  name: {cycle}
  start: {start}
  end: {end}
  timezone: UTC

objectives:
  - id: grow-listening
    title: Become the place people go to listen
    owner: ceo@example.com
    type: aspirational
    key_results:
      - id: weekly-active-listeners
        title: Weekly active listeners from 2,100 to 2,400
        unit: listeners
        baseline: 2100
        target: 2400
        schedule: "0 6 * * *"
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT count(DISTINCT user_id) FROM listens
            WHERE ts >= datetime(:as_of, '-7 days') AND ts < datetime(:as_of)
      - id: weekly-listens
        title: Weekly listens from 2,800 to 3,050
        unit: listens
        baseline: 2800
        target: 3050
        weight: 0.5
        schedule: "0 6 * * *"
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT count(*) FROM listens
            WHERE ts >= datetime(:as_of, '-7 days') AND ts < datetime(:as_of)

  - id: podcast-discovery
    title: Make podcast discovery delightful
    owner: maya@example.com
    type: aspirational
    parent: grow-listening
    key_results:
      - id: first-time-listeners
        title: First-time podcast listeners +20%
        unit: listeners/week
        baseline: auto           # the value at the cycle's start, measured once
        target: "+20%"
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT count(*) FROM listens
            WHERE first_time = 1
              AND ts >= datetime(:as_of, '-7 days') AND ts < datetime(:as_of)
      - id: subscriptions-per-user
        title: Podcasts subscribed per user from 2 to 4
        unit: podcasts/user
        baseline: 2
        target: 4
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT CAST(count(*) AS REAL) / count(DISTINCT user_id) AS value
            FROM subscriptions WHERE ts < datetime(:as_of)
      - id: recommendation-ctr
        title: Recommendation click-through to 40%
        unit: "%"
        baseline: 30
        target: 40
        source:
          type: http
          connection: analytics
          path: /api/v1/metrics/recommendation-ctr
          params: {{as_of: "${{as_of}}"}}
          auth: {{type: bearer, secret: analytics_token}}
          value_path: $.data.value
      - id: satisfaction
        title: Listener satisfaction from 3.5 to 4
        unit: of 5
        baseline: 3.5
        target: 4
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT avg(score) AS value FROM surveys
            WHERE ts >= datetime(:as_of, '-30 days') AND ts < datetime(:as_of)
"""

SUPPORT = """\
cycle:
  name: {cycle}
  start: {start}
  end: {end}
  timezone: UTC

objectives:
  - id: support-excellence
    title: Support that listeners rave about
    owner: sam@example.com
    type: committed
    parent: grow-listening
    key_results:
      - id: response-time
        title: Support first response time under 2 hours
        unit: hours
        baseline: 5.5
        target: 2                # lower is better: a decreasing KR
        source:
          type: sql
          connection: warehouse
          query: >
            SELECT avg((julianday(first_response_at) - julianday(opened_at)) * 24) AS value
            FROM support_tickets
            WHERE opened_at >= datetime(:as_of, '-7 days') AND opened_at < datetime(:as_of)
      - id: uptime
        title: Keep the podcast API up 95% of the time
        unit: "%"
        kind: at_least           # must stay above the level
        target: 95
        floor: 90                # the score reaches 0 at 90%
        source:
          type: http
          connection: analytics
          path: /api/v1/query/uptime
          params: {{as_of: "${{as_of}}"}}
          auth: {{type: bearer, secret: analytics_token}}
          value_path: $.data.result[0].value[1]
"""


def demo_okrs(cycle: str, start: date, end: date) -> dict[str, str]:
    """The demo's OKR files by file name, for the cycle ``cycle`` from ``start`` to ``end``."""
    values = {"cycle": cycle, "start": start.isoformat(), "end": end.isoformat()}
    return {"podcasts.yaml": PODCASTS.format(**values), "support.yaml": SUPPORT.format(**values)}

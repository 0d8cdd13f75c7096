"""Alert messages link each KR to its page on the dashboard (``Settings.report_url``)."""

from __future__ import annotations

from okr_pipeline.okr_core.alerting.messages import group, kr_page_url
from okr_pipeline.okr_core.alerting.routing import RoutingConfig

from .test_messages import ROUTING, note

DASHBOARD = "https://okr.example.com"


def test_each_kr_links_to_its_dashboard_page() -> None:
    notes = [note(kr_id=1, ref="pod/a"), note(kr_id=2, ref="pod/b", transition="repeat")]
    (message,) = group(notes, RoutingConfig(), dashboard_url=DASHBOARD)
    assert f"- [open in the dashboard]({DASHBOARD}/kr/pod/a)" in message.body
    assert f"- [open in the dashboard]({DASHBOARD}/kr/pod/b)" in message.body
    assert message.body.rstrip().endswith(f"[Open the OKR dashboard]({DASHBOARD})")


def test_the_dashboard_wins_over_the_report_of_alerts_yaml() -> None:
    (message, *_) = group([note(ref="obj/kr1")], ROUTING, dashboard_url=DASHBOARD + "/")
    assert f"({DASHBOARD}/kr/obj/kr1)" in message.body
    assert ROUTING.report_url is not None and ROUTING.report_url not in message.body
    assert "open in the report" not in message.body


def test_without_either_url_there_is_no_link() -> None:
    (message,) = group([note(ref="obj/kr1")], RoutingConfig())
    assert "](" not in message.body and "http" not in message.body


def test_the_link_rule() -> None:
    assert kr_page_url("https://x.example.com/okr/", "a/b") == "https://x.example.com/okr/kr/a/b"
    # A ref is ids only, but whatever it holds cannot break out of the URL's path.
    assert kr_page_url("https://x.example.com", "a b/c?d") == "https://x.example.com/kr/a%20b/c%3Fd"

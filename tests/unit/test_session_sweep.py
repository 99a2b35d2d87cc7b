"""The pure part of the cloud's session sweep (issue 14): which terminals' broker sessions
are due to end, pass after pass, and which service links belong to other instances."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from common.mqtt_link import SESSION_NEVER_EXPIRES
from provisioning.broker import BrokerConfig, config_text
from provisioning.revocation import OFFLINE_SESSION_LIMIT, SessionSweep, stale_service_links

NOW = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def test_the_first_pass_looks_back_then_each_pass_takes_only_what_crossed_the_limit() -> None:
    sweep = SessionSweep()
    start, end = sweep.due(NOW)
    assert end == NOW - OFFLINE_SESSION_LIMIT
    assert start == end - sweep.lookback
    sweep.done(end)
    later = NOW + dt.timedelta(hours=1)
    assert sweep.due(later) == (end, later - OFFLINE_SESSION_LIMIT)


def test_a_failed_pass_is_taken_again_whole() -> None:
    sweep = SessionSweep(done_until=NOW - OFFLINE_SESSION_LIMIT - dt.timedelta(hours=1))
    first, _ = sweep.due(NOW)  # not done: a kick failed, the pass is not recorded
    again, _ = sweep.due(NOW + dt.timedelta(hours=1))
    assert again == first
    sweep.done(NOW - OFFLINE_SESSION_LIMIT)
    start, _ = sweep.due(NOW + dt.timedelta(hours=1))
    assert start == NOW - OFFLINE_SESSION_LIMIT


def test_a_clock_that_went_back_gives_an_empty_range() -> None:
    sweep = SessionSweep(done_until=NOW)
    start, end = sweep.due(NOW)
    assert start == end


def test_only_other_instances_leader_links_are_stale() -> None:
    names = [
        "svc.api", "svc.api-desk", "svc.api-fleet", "svc.api-telemetry", "svc.api-admin",
        "svc.api2-desk", "svc.api2-fleet", "svc.api2", "svc.api2-telemetry", "T0001",
        "svc.b-desk",
    ]  # fmt: skip
    assert stale_service_links(names, "api") == ["api2-desk", "api2-fleet", "b-desk"]
    assert stale_service_links(names, "api2") == ["api-desk", "api-fleet", "b-desk"]


def test_the_broker_config_keeps_never_expiring_sessions_out_of_the_expiry_list() -> None:
    """2.0.11 lists never-expiring sessions (and a reload double-lists them) only when
    ``persistent_client_expiration`` is set; the queue bound stays."""
    text = config_text(BrokerConfig(port=1883), Path("/tmp/state"))
    assert "persistent_client_expiration" not in text
    assert "max_queued_messages 100000" in text
    assert SESSION_NEVER_EXPIRES == 0xFFFFFFFF

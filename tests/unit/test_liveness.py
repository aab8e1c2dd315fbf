"""Liveness judged from heartbeats: a silent service is never shown as what it last said."""

from __future__ import annotations

import msgspec

from tradebus.cli.liveness import Row, Watch, judged_state, status_table
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.values import ServiceState

NOW = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def heartbeat(*, age: float, state: ServiceState = ServiceState.READY, heartbeat_ms: int = 1000, pid: int = 10,
              counters: dict[str, int] | None = None) -> ServiceStatus:
    return ServiceStatus(service="connector", instance="paper", state=state, version="1", pid=pid, started_at=0,
                         ts_event=NOW - int(age * SECOND), heartbeat_ms=heartbeat_ms, counters=counters or {},
                         http_port=8080)


def test_a_service_is_what_it_says_until_it_misses_three_heartbeats() -> None:
    assert judged_state(heartbeat(age=2.9), NOW) == "ready"
    assert judged_state(heartbeat(age=3.1), NOW) == "down"
    assert judged_state(heartbeat(age=0.7, heartbeat_ms=200), NOW) == "down"  # its own interval counts
    assert judged_state(heartbeat(age=2.0, state=ServiceState.DEGRADED), NOW) == "degraded"
    assert judged_state(heartbeat(age=60, state=ServiceState.STOPPING), NOW) == "stopped"


def test_a_silent_service_row_says_since_when() -> None:
    row = Row.of(msgspec.structs.replace(heartbeat(age=12.4), detail="auth_failed: bad key"), now_ns=NOW)
    assert (row.state, row.pid, row.http_port) == ("down", 10, 8080)
    assert row.detail == "no heartbeat for 12s; auth_failed: bad key"
    line = status_table([row]).splitlines()[1]
    assert line.split()[:6] == ["connector.paper", "down", "10", "12.4s", "-", "8080"]


def test_the_watch_keeps_the_newest_word_and_restarts_rates_with_a_new_process() -> None:
    watch = Watch()
    watch.observe(heartbeat(age=2, counters={"sent": 100}))
    watch.observe(heartbeat(age=1, counters={"sent": 300}))
    assert watch.rates["connector.paper"] == 200
    watch.observe(heartbeat(age=1.5, counters={"sent": 999}))  # a late ping answer: older news
    assert watch.latest["connector.paper"].counters == {"sent": 300}
    watch.observe(heartbeat(age=0, pid=11, counters={"sent": 5}))
    assert "connector.paper" not in watch.rates and watch.latest["connector.paper"].pid == 11

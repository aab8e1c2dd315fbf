"""Whether a predecessor's last heartbeat shows it alive (takeover.py): by its age when it is
fresh by our clock, else by whether it is still the latest a while later."""

from __future__ import annotations

import time

from tradebus.schemas.codecs import encode
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.values import ServiceState
from tradebus.shared.bus import StoredMessage
from tradebus.shared.takeover import _alive_for

SUBJECT = "tradebus.status.risk.main"


def heartbeat(seq: int, *, age: float, state: ServiceState = ServiceState.READY) -> StoredMessage:
    sent = time.time_ns() - int(age * 1e9)
    status = ServiceStatus(service="risk", instance="main", state=state, version="1", pid=1, started_at=sent,
                           ts_event=sent, heartbeat_ms=1000)
    return StoredMessage(SUBJECT, encode(status), seq, sent)


def test_a_fresh_heartbeat_is_alive_for_three_of_its_intervals() -> None:
    assert _alive_for(heartbeat(7, age=0.5), {}) == 3.0


def test_an_old_a_stopping_or_an_unchanged_heartbeat_is_gone() -> None:
    assert _alive_for(heartbeat(7, age=3.5), {}) is None
    assert _alive_for(heartbeat(7, age=0.1, state=ServiceState.STOPPING), {}) is None
    # Fresh by its own clock (skew), but the same message three intervals later: silent.
    assert _alive_for(heartbeat(7, age=-3600), {SUBJECT: 7}) is None
    assert _alive_for(heartbeat(8, age=-3600), {SUBJECT: 7}) == 3.0


def test_a_message_that_is_no_heartbeat_is_no_evidence_of_life() -> None:
    assert _alive_for(StoredMessage(SUBJECT, b"garbage", 1, 0), {}) is None

"""What a service's heartbeats say about it, and the status table that shows it.

A heartbeat's `state` is what the service said about itself when it was still talking. Whether
it is still alive is judged from evidence: the heartbeat's age against the interval the
service announced (`heartbeat_ms`). A service silent for MISSED_BEATS intervals is `down`
(or `stopped`, if its last word was that it was stopping), never still `ready`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.values import ServiceState

MISSED_BEATS = 3
"""Heartbeats a service may miss before it counts as silent: one late heartbeat on a busy
machine is not a death."""

DOWN = "down"
STOPPED = "stopped"


def service_key(status: ServiceStatus) -> str:
    return f"{status.service}.{status.instance}"


def heartbeat_age(status: ServiceStatus, now_ns: int | None = None) -> float:
    """Seconds since the service sent this heartbeat."""
    return max(0.0, ((time.time_ns() if now_ns is None else now_ns) - status.ts_event) / 1e9)


def silence_limit(status: ServiceStatus, beats: float = MISSED_BEATS) -> float:
    """Seconds without a heartbeat after which the service has missed `beats` of them."""
    return beats * max(status.heartbeat_ms, 1) / 1000


def is_silent(status: ServiceStatus, now_ns: int | None = None) -> bool:
    return heartbeat_age(status, now_ns) > silence_limit(status)


def judged_state(status: ServiceStatus, now_ns: int | None = None) -> str:
    """The service's own state while it keeps beating; `down` / `stopped` once it is silent."""
    if not is_silent(status, now_ns):
        return status.state.value
    return STOPPED if status.state is ServiceState.STOPPING else DOWN


@dataclass
class Row:
    """One line of the status table."""

    key: str
    state: str
    pid: int | None = None
    heartbeat_age: float | None = None  # seconds; None: never heard of
    rate: float | None = None  # messages/s, when two heartbeats allow computing it
    http_port: int | None = None
    restarts: int | None = None  # known to a supervisor only
    detail: str = ""

    @classmethod
    def of(cls, status: ServiceStatus, *, now_ns: int | None = None, rate: float | None = None) -> Row:
        state = judged_state(status, now_ns)
        age = heartbeat_age(status, now_ns)
        detail = status.detail if state == status.state.value else f"no heartbeat for {age:.0f}s; {status.detail}".rstrip("; ")
        return cls(key=service_key(status), state=state, pid=status.pid, heartbeat_age=age, rate=rate,
                   http_port=status.http_port, detail=detail)


@dataclass
class Watch:
    """The latest heartbeat of every service, and message rates derived from two of them."""

    latest: dict[str, ServiceStatus] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

    def observe(self, status: ServiceStatus) -> None:
        key = service_key(status)
        previous = self.latest.get(key)
        if previous is not None and status.ts_event <= previous.ts_event:
            return  # an older heartbeat (e.g. a ping answer overtaken by a heartbeat) says less
        if previous is not None and status.pid == previous.pid:
            moved = sum(status.counters.values()) - sum(previous.counters.values())
            self.rates[key] = max(0.0, moved / ((status.ts_event - previous.ts_event) / 1e9))
        elif previous is not None:
            self.rates.pop(key, None)  # a new process: its counters started again
        self.latest[key] = status

    def rows(self, now_ns: int | None = None) -> list[Row]:
        return [Row.of(status, now_ns=now_ns, rate=self.rates.get(key)) for key, status in self.latest.items()]


def status_table(rows: list[Row], *, supervised: bool = False) -> str:
    """A fixed-width table; `supervised` adds the RESTARTS column a supervisor knows."""
    restarts = f" {'RESTARTS':>8}" if supervised else ""
    lines = [f"{'SERVICE':<22} {'STATE':<10} {'PID':>7} {'HEARTBEAT':>10} {'MSG/S':>9} {'HTTP':>6}{restarts}  DETAIL"]
    for row in sorted(rows, key=lambda r: r.key):
        pid = str(row.pid) if row.pid is not None else "-"
        age = f"{row.heartbeat_age:.1f}s" if row.heartbeat_age is not None else "-"
        rate = f"{row.rate:,.0f}" if row.rate is not None else "-"
        port = str(row.http_port) if row.http_port else "-"
        restart_count = f" {row.restarts if row.restarts is not None else '-':>8}" if supervised else ""
        lines.append(f"{row.key:<22} {row.state:<10} {pid:>7} {age:>10} {rate:>9} {port:>6}{restart_count}  {row.detail}")
    return "\n".join(lines)

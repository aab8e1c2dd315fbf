"""Deadlines of order commands: after it, a place or modify is refused, never executed.

The anchor is the command's store time in the CMD stream, the NATS server's clock at
intake: a clock the fleet controls (a client's `ts_created` may be skewed, or zero). Risk
adds the command's time to live and hands the deadline to the connector in the
`Tradebus-Deadline` header (unix ns) of the routed message. Risk and connector compare it
with their own host's clock, so the hosts must keep time (NTP): a skew of X between a host
and the NATS server shortens or lengthens every time to live by X.
"""

from __future__ import annotations

from nats.aio.msg import Msg

DEADLINE = "Tradebus-Deadline"


def stored_at(msg: Msg) -> int:
    """Unix ns at which JetStream stored a consumed message (microsecond precision)."""
    return round(msg.metadata.timestamp.timestamp() * 1_000_000) * 1000


def routed_deadline(msg: Msg, fallback_ttl_ns: int) -> int:
    """The deadline risk gave a routed command. A route without one (from a risk service
    older than deadlines) gets `fallback_ttl_ns` from its own store time; an unreadable one
    has passed: only risk may route, so it cannot be trusted to mean anything later."""
    header = (msg.headers or {}).get(DEADLINE)
    if header is None:
        return stored_at(msg) + fallback_ttl_ns
    try:
        return int(header)
    except ValueError:
        return 0


def late_message(now: int, deadline: int) -> str:
    return f"the command's deadline passed {(now - deadline) / 1e6:.0f} ms ago"

"""Quarantine: what a service does with a message or a stored value it cannot read.

One unreadable message must never stop a service, nor the start-up that replays it. Every
boundary that decodes hands what it could not read to `Quarantine.hold`, which logs a
warning naming the subject or bucket key, counts it in `tradebus_decode_errors_total`
(label `family`), and publishes the raw bytes on core NATS to
`tradebus.dlq.<service>.<family>` for an operator to inspect (`nats sub 'tradebus.dlq.>'`).
The caller then goes on as if the message had not come (or answers its sender, where it
has one).

The dead-letter publish is best effort and bounded, so poison cannot become back-pressure:
it runs in the background (callers are often synchronous decoders), at most
`MAX_IN_FLIGHT` at a time, each given `PUBLISH_TIMEOUT`, the body cut to what the bus
accepts. What cannot be published is counted in `tradebus_dlq_dropped_total`; the log line
and the decode-error count remain.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tradebus.schemas import subjects

from .health import ServiceMetrics

if TYPE_CHECKING:
    from .bus import Bus

log = logging.getLogger(__name__)

ORIGIN_HEADER = "Tradebus-Origin"
"""The quarantined message's subject, or `$KV.<bucket>.<key>` for a bucket entry."""
ERROR_HEADER = "Tradebus-Error"
"""Why it could not be read (the decoder's message, shortened)."""
SIZE_HEADER = "Tradebus-Size"
"""The original body's length in bytes; the body published may be cut short (see below)."""
REASON_HEADER = "Tradebus-Reason"
"""For a message that was readable but refused (e.g. an event its publisher may not state):
a machine-readable reason (`subject_mismatch`, `not_a_rejection`). Absent for the unreadable."""

PUBLISH_TIMEOUT = 1.0  # seconds one dead-letter publish may take
MAX_IN_FLIGHT = 100  # dead-letter publishes running at once; beyond that they are dropped
HEADER_ROOM = 4096  # bytes of max_payload left for the headers
MAX_ERROR_TEXT = 300


class Quarantine:
    """One per service. `bus` is set once the service is connected: what is held before
    (nothing is decoded before) would only be logged and counted."""

    def __init__(self, service: str, metrics: ServiceMetrics) -> None:
        self.service = service
        self.metrics = metrics
        self.bus: Bus | None = None
        self.dropped = metrics.counter(
            "tradebus_dlq_dropped_total",
            "Quarantined messages that could not be published to the dead-letter subject.",
            ("family",),
        )
        self._in_flight: set[asyncio.Task[None]] = set()

    def hold(self, family: str, origin: str, data: bytes, error: object, *, reason: str = "") -> None:
        """Set aside an unreadable message (`origin`: its subject) or bucket entry (`origin`:
        `$KV.<bucket>.<key>`). `family` names the kind of input: a subject family
        (`command`, `order_event`, ...) or a bucket (`trading_state`, `orders_bucket`).
        `reason`: the machine-readable reason a readable message was refused."""
        why = " ".join(str(error).split())[:MAX_ERROR_TEXT]
        self.metrics.decode_errors.labels(family=family).inc()
        log.warning("quarantined a refused message" if reason else "quarantined an unreadable message",
                    extra={"family": family, "origin": origin, "bytes": len(data), "error": why, "reason": reason})
        if self.bus is None or self.bus.nc.is_closed or len(self._in_flight) >= MAX_IN_FLIGHT:
            self.dropped.labels(family=family).inc()
            return
        task = asyncio.ensure_future(self._publish(family, origin, data, why, reason))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _publish(self, family: str, origin: str, data: bytes, why: str, reason: str) -> None:
        assert self.bus is not None
        nc = self.bus.nc
        headers = {ORIGIN_HEADER: _header_text(origin), ERROR_HEADER: _header_text(why), SIZE_HEADER: str(len(data))}
        if reason:
            headers[REASON_HEADER] = _header_text(reason)
        body = data[: max(0, nc.max_payload - HEADER_ROOM)] if nc.max_payload else data
        try:
            await asyncio.wait_for(nc.publish(subjects.dead_letter(self.service, family), body, headers=headers),
                                   PUBLISH_TIMEOUT)
        except Exception as exc:  # best effort: the log line and the count are what must not fail
            self.dropped.labels(family=family).inc()
            log.warning("dead-letter publish failed", extra={"family": family, "error": repr(exc)})

    def cancel(self) -> None:
        """Drop the publishes still running (when stopping: they are best effort)."""
        for task in self._in_flight:
            task.cancel()


def _header_text(value: Any) -> str:
    """A header value NATS accepts: one line of printable ASCII."""
    return "".join(char if " " <= char <= "~" else "?" for char in str(value))[:1024]

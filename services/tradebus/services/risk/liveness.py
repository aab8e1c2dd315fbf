"""Which venues have a live connector, from the evidence of their heartbeats.

Every connector publishes its status on `tradebus.status.connector.<venue>` each heartbeat
interval. A venue whose connector has been silent longer than the timeout (or at least
three of its own heartbeat intervals), or that said it is stopping, is unavailable: risk
refuses its new orders rather than queue them for a connector that may not come back soon.

Start-up: a risk service that has just started has heard no heartbeat yet. A venue never
heard from counts as available until one timeout has passed since risk started (long
enough to hear a running connector); after that, never heard from means unavailable. An
order routed during that first window and not executed in time is still refused by its
deadline, by the connector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.values import ServiceState

HEARTBEATS_MISSED = 3  # a connector is lost after missing this many of its own heartbeats


@dataclass
class VenueLiveness:
    """Monotonic times in seconds are passed in, so it is testable."""

    timeout: float
    started: float
    _heard: dict[str, tuple[float, float]] = field(default_factory=dict)  # venue -> (when, allowed silence)
    _stopped: set[str] = field(default_factory=set)

    def on_status(self, status: ServiceStatus, clock: float) -> None:
        """A connector's heartbeat; its instance is its venue."""
        venue = status.instance
        if status.state is ServiceState.STOPPING:
            self._heard.pop(venue, None)
            self._stopped.add(venue)
            return
        self._stopped.discard(venue)
        self._heard[venue] = (clock, max(self.timeout, HEARTBEATS_MISSED * status.heartbeat_ms / 1000))

    def unavailable(self, venue: str, clock: float) -> str | None:
        """Why the venue's connector is not there, or None if it is (or may be)."""
        if venue in self._stopped:
            return f"the connector of {venue} stopped"
        heard = self._heard.get(venue)
        if heard is None:
            if clock - self.started <= self.timeout:
                return None
            return f"no heartbeat from the connector of {venue} since risk started"
        when, allowed = heard
        if clock - when > allowed:
            return f"no heartbeat from the connector of {venue} for {clock - when:.1f} s"
        return None

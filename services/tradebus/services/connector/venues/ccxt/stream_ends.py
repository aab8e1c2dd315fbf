"""Venue messages that end a websocket stream while its connection stays open, surfaced as
the dropped connection they amount to.

ccxt leaves a watch pending on them: on Binance's `eventStreamTerminated` it forgets the
user data subscription but never wakes `watch_orders`, which then waits for order updates
that no longer come; `serverShutdown` it does not handle at all, so the stream lives on
until the venue cuts it. Here both reject every pending watch of that connection with a
NetworkError and retire the connection, so the next watch opens a new one (and subscribes
anew) and the connector does what it does after any lost stream: reconnect, reconcile
with the venue, resume (market streams: a gap, then a reconnected marker).

Sources (binance/binance-spot-api-docs, commit a5e0bc3d):
- user-data-stream.md "Event Stream Terminated": `{"subscriptionId": 0, "event": {"e":
  "eventStreamTerminated", "E": ...}}`, after which that subscription sends nothing more;
- web-socket-api.md "Server Shutdown": `{"event": {"e": "serverShutdown", "E": ...}}`,
  "Please establish a new connection as soon as possible"; web-socket-streams.md: the same
  event unwrapped on market streams.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ccxt.base.errors import NetworkError

log = logging.getLogger(__name__)

# Per exchange: the event types (`e`) that end a stream on a connection that stays open.
STREAM_ENDING_EVENTS: dict[str, frozenset[str]] = {
    "binance": frozenset({"eventStreamTerminated", "serverShutdown"}),
}


def ending_event(exchange_id: str, message: Any) -> str | None:
    """The stream-ending event type `message` carries, if it is one for this exchange."""
    if not isinstance(message, dict):
        return None
    event = message.get("event", message)
    kind = event.get("e") if isinstance(event, dict) else None
    return kind if kind in STREAM_ENDING_EVENTS.get(exchange_id, ()) else None


def surface_stream_ends(exchange: Any, exchange_id: str) -> None:
    """Make `exchange` (a ccxt pro instance, before its first websocket) treat the
    exchange's stream-ending events as a lost connection."""
    if exchange_id not in STREAM_ENDING_EVENTS:
        return
    handle_message = exchange.handle_message  # ccxt binds it when it creates each connection

    def handle(client: Any, message: Any) -> Any:
        kind = ending_event(exchange_id, message)
        result = handle_message(client, message)
        if kind is not None:
            log.warning("venue ended the stream; reconnecting", extra={"event": kind})
            client.reject(NetworkError(f"{exchange_id} {kind}: the venue ended this stream"))
            if exchange.clients.get(client.url) is client:
                del exchange.clients[client.url]  # the next watch connects anew
            asyncio.ensure_future(client.close())
        return result

    exchange.handle_message = handle

"""Every use of alpaca-py's private attributes, in one place (the connector uses its public
API everywhere else). alpaca-py is pinned to the versions checked against this shape
(pyproject: alpaca-py >=0.40,<0.45; constraints.txt locks the one tested), and
tests/unit/test_alpaca_sdk_seams.py fails, naming the attribute and the installed version,
when an alpaca-py no longer has it.

Why private:
- `TradingClient._retry`: the SDK sleeps and retries a 429 / 504 itself (3 times, 3 s
  apart), which would hold a command while the base class owns retries and back-off.
  TradingClient's constructor takes no retry setting (RESTClient's `retry_attempts` is not
  passed through, and it ignores 0), and alpaca-py reads no environment variable for it.
- `_start_ws()` and `_ws` of TradingStream / DataStream: the public `run()` runs the
  stream on an event loop and thread of its own and reconnects silently after a drop,
  hiding the gap from the base class. The connector drives the connection on its own loop
  instead: `_start_ws()` connects and authenticates (a TradingStream with a trade_updates
  handler also sends `listen`), then frames are sent and received on `_ws`. The handler
  (`subscribe_trade_updates`) and closing (`close()`) are public.
"""

from __future__ import annotations

from typing import Any

from alpaca.data.live.websocket import DataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream


def trading_client(
    api_key: str, api_secret: str, *, paper: bool, url: str | None, raw_data: bool = False
) -> TradingClient:
    """A TradingClient that answers a 429 / 504 at once instead of sleeping and retrying."""
    client = TradingClient(api_key, api_secret, paper=paper, raw_data=raw_data, url_override=url)
    client._retry = 0
    return client


async def open_stream(stream: TradingStream | DataStream) -> None:
    """Connect and authenticate on the running loop (and `listen`, for a TradingStream
    with a trade_updates handler). ValueError: authentication refused."""
    await stream._start_ws()


async def send(stream: TradingStream | DataStream, frame: bytes | str) -> None:
    socket: Any = stream._ws  # websockets' client connection, once open_stream has run
    await socket.send(frame)


async def receive(stream: TradingStream | DataStream) -> Any:
    """The next frame; websockets' ConnectionClosed when the connection is gone."""
    socket: Any = stream._ws
    return await socket.recv()

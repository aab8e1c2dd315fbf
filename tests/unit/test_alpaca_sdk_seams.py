"""The alpaca-py internals venues/alpaca/sdk.py relies on are still there: a new alpaca-py
that renames or drops one fails here, naming it and the installed version, before a
connector misbehaves (without `_retry` the SDK would sleep on every 429, unnoticed). What
they do is covered end to end by tests/integration/test_alpaca_emulator.py."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import version

import pytest
from alpaca.common.rest import RESTClient
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream

INSTALLED = version("alpaca-py")
ADAPTER = "venues/alpaca/sdk.py"

# (the SDK object as the connector makes it, its private attribute, what sdk.py does with it)
SEAMS: list[tuple[Callable[[], object], str, str]] = [
    (lambda: TradingClient("key", "secret", paper=True), "_retry", "sets it to 0"),
    (lambda: TradingStream("key", "secret"), "_start_ws", "awaits it to connect"),
    (lambda: TradingStream("key", "secret"), "_ws", "receives on it"),
    (lambda: StockDataStream("key", "secret"), "_start_ws", "awaits it to connect"),
    (lambda: StockDataStream("key", "secret"), "_ws", "sends and receives on it"),
]


def advice(where: str, use: str) -> str:
    return f"alpaca-py {INSTALLED} has no usable {where}, which {ADAPTER} {use}: adapt sdk.py and the pin in pyproject.toml"


@pytest.mark.parametrize(("make", "attribute", "use"), SEAMS, ids=[f"{i}{a}" for i, (_, a, _) in enumerate(SEAMS)])
def test_the_private_attribute_is_there(make: Callable[[], object], attribute: str, use: str) -> None:
    sdk_object = make()
    message = advice(f"{type(sdk_object).__name__}.{attribute}", use)
    assert hasattr(sdk_object, attribute), message
    if attribute == "_start_ws":
        assert inspect.iscoroutinefunction(getattr(sdk_object, attribute)), message


def test_requests_take_their_retry_count_from_retry() -> None:
    """Setting `_retry` only helps while the request loop reads it."""
    assert "self._retry" in inspect.getsource(RESTClient._request), advice(
        "RESTClient._request reading _retry", "relies on to stop 429 retries"
    )

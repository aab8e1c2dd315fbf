"""The venues a connector can host: one line per venue.

Entries are import paths, not imports, so a venue's SDK is loaded only by the process that
runs that venue (each SDK is an optional extra).
"""

from __future__ import annotations

from importlib import import_module

from .base import VenueConnector

VENUES: dict[str, str] = {
    "paper": "tradebus.services.connector.venues.paper.connector:PaperConnector",
    "binance": "tradebus.services.connector.venues.ccxt.connector:CcxtConnector",
    "bybit": "tradebus.services.connector.venues.ccxt.connector:CcxtConnector",
    "alpaca": "tradebus.services.connector.venues.alpaca.connector:AlpacaConnector",
}


CCXT_CONNECTOR = VENUES["binance"]


def connector_class(venue: str) -> type[VenueConnector]:
    """The connector of `venue`; any other ccxt exchange id runs on the ccxt connector."""
    entry = VENUES.get(venue) or (CCXT_CONNECTOR if _is_ccxt_exchange(venue) else None)
    if entry is None:
        raise ValueError(
            f"unknown venue {venue!r}; known venues: {', '.join(sorted(VENUES))} or any ccxt exchange id"
        )
    module_name, class_name = entry.split(":")
    return getattr(import_module(module_name), class_name)


def _is_ccxt_exchange(venue: str) -> bool:
    try:
        import ccxt
    except ImportError:  # the ccxt extra is not installed
        return False
    return venue in ccxt.exchanges

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


def connector_class(venue: str) -> type[VenueConnector]:
    try:
        module_name, class_name = VENUES[venue].split(":")
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known venues: {', '.join(sorted(VENUES))}") from None
    return getattr(import_module(module_name), class_name)

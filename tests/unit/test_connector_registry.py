"""Which connector hosts a venue: one registration line each, any ccxt exchange id by default."""

from __future__ import annotations

import pytest

from tradebus.services.connector.registry import connector_class
from tradebus.services.connector.venues.ccxt.connector import CcxtConnector
from tradebus.services.connector.venues.paper.connector import PaperConnector


def test_registered_and_ccxt_venues() -> None:
    assert connector_class("paper") is PaperConnector
    assert connector_class("binance") is CcxtConnector
    assert connector_class("kraken") is CcxtConnector  # not registered: a ccxt exchange id


def test_an_unknown_venue_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="any ccxt exchange id"):
        connector_class("no_such_venue")

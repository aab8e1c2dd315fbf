"""A venue's settings from the environment (`TRADEBUS_VENUES__<VENUE>__<KEY>`), as the venue
configs' docstrings and deploy files promise: the fleet-wide settings let them through to the
venue, whose own config type checks and converts them."""

from __future__ import annotations

import pytest

from tradebus.services.connector.venues.ccxt.config import CcxtConfig
from tradebus.services.settings import load_settings, venue_config
from tradebus.shared.config import ConfigError


def test_a_venue_setting_from_the_environment_reaches_the_venue() -> None:
    env = {"TRADEBUS_VENUES__BINANCE__TESTNET": "true"}
    settings = load_settings(env=env)
    config = venue_config(settings, "binance", env=env)
    assert isinstance(config, CcxtConfig)
    assert config.testnet is True


def test_an_unknown_venue_setting_from_the_environment_is_refused_by_the_venue() -> None:
    env = {"TRADEBUS_VENUES__BINANCE__TESTNETT": "true"}
    settings = load_settings(env=env)  # the fleet's settings cannot know a venue's fields
    with pytest.raises(ConfigError, match="testnet"):
        venue_config(settings, "binance", env=env)


def test_a_setting_under_a_typed_table_is_still_refused_where_it_cannot_be_set() -> None:
    with pytest.raises(ConfigError, match="is not a section"):
        load_settings(env={"TRADEBUS_RISK__VENUES__BINANCE__MAX_ORDER_QTY": "1"})

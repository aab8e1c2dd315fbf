"""The venue specs (connector/venuespecs.py), the one list of venues: each resolves to its
parts, and each part ships. Any ccxt exchange id is a venue through the ccxt spec."""

from __future__ import annotations

import importlib.util
import re
import tomllib
import types
import typing
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tradebus.emulators.server import Emulator
from tradebus.services.connector.base import VenueConnector
from tradebus.services.connector.credentials import venue_credentials
from tradebus.services.connector.venuespecs import VENUE_SPECS, VenueSpec, venue_spec
from tradebus.shared.config import ConfigError

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
# A venue with an environment of its own (Fyers) is checked there: .venv-fyers runs these
# tests for it (tests/venues/test_fyers_environment.py).
SPECS = [spec for spec in VENUE_SPECS.values() if spec.in_this_environment]


def declared_config(connector: type[VenueConnector[typing.Any]]) -> object:
    """The config type a connector class declares: `X(RemoteVenueConnector[XConfig])`."""
    for cls in connector.__mro__:
        for base in getattr(cls, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, VenueConnector):
                (config,) = typing.get_args(base)
                if not isinstance(config, typing.TypeVar):
                    return config
    raise AssertionError(f"{connector.__name__} declares no config type")


def test_registered_and_ccxt_venues() -> None:
    # imported here: this module's spec checks also run in .venv-fyers, which has no ccxt
    from tradebus.services.connector.venues.ccxt.connector import CcxtConnector
    from tradebus.services.connector.venues.paper.connector import PaperConnector

    assert venue_spec("paper").connector_class() is PaperConnector
    assert venue_spec("binance").connector_class() is CcxtConnector
    assert venue_spec("kraken").connector_class() is CcxtConnector  # not registered: a ccxt exchange id
    assert venue_spec("kraken").needs_credentials and venue_spec("kraken").emulator is None


def test_an_unknown_venue_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="any ccxt exchange id"):
        venue_spec("no_such_venue")
    with pytest.raises(ValueError, match="unknown venue '_template'"):  # the template is no venue
        venue_spec("_template")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_every_spec_resolves_to_a_connector_of_its_config(spec: VenueSpec) -> None:
    connector = spec.connector_class()
    assert issubclass(connector, VenueConnector) and not getattr(connector, "__abstractmethods__", None)
    assert declared_config(connector) is spec.config_class()
    assert spec.embedded == (spec.section is not None), "an embedded venue's settings are a section of its own"
    if spec.emulator is not None:
        assert issubclass(spec.emulator_class(), Emulator)
    else:
        assert spec.embedded, "a remote venue is tried offline and conformance-tested through its emulator"


def _normalized(distribution: str) -> str:
    """A distribution name as PEP 503 compares them (fyers-apiv3 installs as fyers_apiv3)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


@pytest.mark.parametrize("spec", [spec for spec in SPECS if spec.extra], ids=lambda spec: spec.name)
def test_every_spec_extra_is_packaged_and_installs_its_sdk(spec: VenueSpec) -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert spec.extra in extras, f"pyproject.toml has no extra {spec.extra!r}"
    assert spec.sdk is not None and importlib.util.find_spec(spec.sdk) is not None
    requirements = {_normalized(re.split(r"[<>=!~;\[ ]", requirement)[0]) for requirement in extras[spec.extra]}
    installers = {_normalized(name) for name in packages_distributions().get(spec.sdk, [])}
    assert requirements & installers, f"extra {spec.extra!r} ({requirements}) installs none of {installers}"
    if spec.emulator is not None:  # the venue's extra brings its emulator's dependencies too
        assert "tradebus[emulators]" in extras[spec.extra]


@pytest.mark.parametrize("spec", [spec for spec in SPECS if spec.needs_credentials], ids=lambda spec: spec.name)
def test_every_remote_venue_reads_its_secret_under_its_spec_name(spec: VenueSpec) -> None:
    """`tradebus run` and `up --emulate` pass the secret as <VENUE>_<secret_name>, and a
    settings table may hold it under the same name (lower case): Zerodha's access token."""
    prefix = spec.name.upper()
    assert spec.secret_name.lower() in spec.config_class().__struct_fields__
    # values no log line holds otherwise: every Secret's value is masked wherever it appears
    env = {f"{prefix}_API_KEY": "spec-key-0091", f"{prefix}_{spec.secret_name}": "spec-secret-0091"}
    assert venue_credentials(spec.name, env=env).api_secret.reveal() == "spec-secret-0091"  # the spec's name, unasked
    with pytest.raises(ConfigError, match=f"{prefix}_{spec.secret_name}"):
        venue_credentials(spec.name, env={f"{prefix}_API_KEY": "spec-key-0091"})


# Where a connector made only to read its capabilities would publish market data: it never
# does (nothing is started), but its publisher takes the bus's publish when it is made.
NO_BUS = types.SimpleNamespace(nc=types.SimpleNamespace(publish=None))


def _connector(spec: VenueSpec) -> VenueConnector[typing.Any]:
    """The venue's connector, made as the connector service makes it (not started: a remote
    one is pointed at an emulator that is never run)."""
    from tradebus.services.connector.marketdata import MarketDataPublisher
    from tradebus.services.settings import Settings, venue_config

    settings = Settings()
    if not spec.embedded:
        emulator_type = spec.emulator_class()
        secret = emulator_type.issue_secret("spec-secret-0092")
        emulator = emulator_type.create(credentials={"spec-key": secret})
        settings = Settings(venues={spec.name: emulator.connector_config(account="main", api_key="spec-key",
                                                                         api_secret=secret)})

    async def no_journal() -> list[typing.Any]:
        return []

    return spec.connector_class()(venue=spec.name, config=venue_config(settings, spec.name, env={}),
                                  market_data=MarketDataPublisher(NO_BUS, spec.name),
                                  emit=lambda events: None, read_journal=no_journal)


@pytest.mark.parametrize("spec", [spec for spec in SPECS if spec.embedded or spec.emulator], ids=lambda spec: spec.name)
def test_every_venue_holds_the_order_groups_its_spec_names(spec: VenueSpec) -> None:
    """Risk routes a group by the spec line, the connector answers it by its capabilities:
    they must agree, or groups are routed to a venue that refuses them (or refused for one
    that holds them)."""
    assert _connector(spec).capabilities.order_groups == spec.order_groups

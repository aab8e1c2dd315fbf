"""Every venue the fleet knows, one line each: what the connector host, `tradebus up
--emulate`, `tradebus emulate`, the conformance suite and the packaging check read.

A spec names its parts by import path ("module:Name"), never imports them, so a process
loads only the SDK of the venue it runs (each SDK is an optional extra). A venue not listed
here but known to ccxt runs on the ccxt connector (`venue_spec("kraken")`). Adding a venue:
services/tradebus/services/connector/venues/_template/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from tradebus.schemas.values import GroupKind

if TYPE_CHECKING:  # the emulators need aiohttp (an extra): loaded only where a venue is emulated
    from tradebus.emulators.server import Emulator

    from .base import VenueConnector

VENUES_PACKAGE = "tradebus.services.connector.venues"
EMULATORS_PACKAGE = "tradebus.emulators"


def load(path: str) -> Any:
    """The object an import path ("package.module:Name") names."""
    module_name, name = path.split(":")
    return getattr(import_module(module_name), name)


@dataclass(frozen=True, kw_only=True)
class VenueSpec:
    name: str  # the venue's token in subjects, commands and `--venue`
    connector: str  # its VenueConnector subclass
    config: str  # its settings type (msgspec Struct), what the connector's `config` holds
    extra: str | None = None  # the pip extra that installs its SDK (`pip install 'tradebus[<extra>]'`)
    sdk: str | None = None  # the top-level module that extra installs
    # The credential it signs with besides the key (`<VENUE>_<secret_name>`: Zerodha trades
    # with an access token, not an API secret)
    secret_name: str = "API_SECRET"
    # Whether it signs requests with credentials at all: IBKR does not (the TWS or IB Gateway
    # it connects to is logged in by its user, and trusts the API connection by address).
    signs_requests: bool = True
    emulator: str | None = None  # its Emulator (services/tradebus/emulators/), for offline runs and the conformance suite
    # Simulated inside its connector process: no remote API, so no credentials and nothing to
    # emulate; its settings are the fleet settings' own `[<section>]`, not `[venues.<name>]`.
    embedded: bool = False
    section: str | None = None
    # The virtualenv its connector runs from when its SDK cannot share the fleet's own
    # (fyers-apiv3 pins requests and aiohttp below ccxt's needs): `.venv-fyers`, made by .ci/fyers-env.
    environment: str | None = None
    # Its daily login (a LoginFlow, connector/login.py): a venue whose access tokens last a day
    login: str | None = None
    # The order groups the venue holds natively (its connector's Capabilities.order_groups say
    # the same): risk routes only these kinds to it and refuses the others (GROUPS: no order
    # emulation service yet).
    order_groups: frozenset[GroupKind] = frozenset()

    @property
    def needs_credentials(self) -> bool:
        return not self.embedded and self.signs_requests

    @property
    def in_this_environment(self) -> bool:
        """Whether this Python environment runs the venue: a venue with an environment of its
        own runs (and is tested) only where its SDK is installed."""
        return self.environment is None or self.sdk is None or find_spec(self.sdk) is not None

    def connector_class(self) -> type[VenueConnector[Any]]:
        cls: type[VenueConnector[Any]] = load(self.connector)
        return cls

    def config_class(self) -> type[Any]:
        cls: type[Any] = load(self.config)
        return cls

    def emulator_class(self) -> type[Emulator]:
        if self.emulator is None:
            raise ValueError(f"no emulator for venue {self.name!r}; emulated venues: {', '.join(emulated_venues())}")
        cls: type[Emulator] = load(self.emulator)
        return cls


def _ccxt(name: str, emulator: str | None = None, order_groups: frozenset[GroupKind] = frozenset()) -> VenueSpec:
    """A venue served by the ccxt connector (one connector for every ccxt exchange id)."""
    return VenueSpec(name=name, connector=f"{VENUES_PACKAGE}.ccxt.connector:CcxtConnector",
                     config=f"{VENUES_PACKAGE}.ccxt.config:CcxtConfig", extra="ccxt", sdk="ccxt", emulator=emulator,
                     order_groups=order_groups)


VENUE_SPECS: dict[str, VenueSpec] = {spec.name: spec for spec in (
    VenueSpec(name="paper", connector=f"{VENUES_PACKAGE}.paper.connector:PaperConnector",
              config=f"{VENUES_PACKAGE}.paper.config:PaperConfig", embedded=True, section="paper",
              order_groups=frozenset(GroupKind)),
    _ccxt("binance", emulator=f"{EMULATORS_PACKAGE}.binance:BinanceEmulator", order_groups=frozenset({GroupKind.OCO})),
    _ccxt("bybit", emulator=f"{EMULATORS_PACKAGE}.bybit:BybitEmulator"),
    VenueSpec(name="alpaca", connector=f"{VENUES_PACKAGE}.alpaca.connector:AlpacaConnector",
              config=f"{VENUES_PACKAGE}.alpaca.config:AlpacaConfig", extra="alpaca", sdk="alpaca",
              emulator=f"{EMULATORS_PACKAGE}.alpaca:AlpacaEmulator",
              order_groups=frozenset({GroupKind.BRACKET, GroupKind.OCO, GroupKind.OTO})),
    VenueSpec(name="zerodha", connector=f"{VENUES_PACKAGE}.zerodha.connector:ZerodhaConnector",
              config=f"{VENUES_PACKAGE}.zerodha.config:ZerodhaConfig", extra="zerodha", sdk="kiteconnect",
              secret_name="ACCESS_TOKEN", emulator=f"{EMULATORS_PACKAGE}.zerodha:ZerodhaEmulator",
              login=f"{VENUES_PACKAGE}.zerodha.login:FLOW"),
    VenueSpec(name="fyers", connector=f"{VENUES_PACKAGE}.fyers.connector:FyersConnector",
              config=f"{VENUES_PACKAGE}.fyers.config:FyersConfig", extra="fyers", sdk="fyers_apiv3",
              secret_name="ACCESS_TOKEN", emulator=f"{EMULATORS_PACKAGE}.fyers:FyersEmulator", environment=".venv-fyers",
              login=f"{VENUES_PACKAGE}.fyers.login:FLOW"),
    VenueSpec(name="ibkr", connector=f"{VENUES_PACKAGE}.ibkr.connector:IbkrConnector",
              config=f"{VENUES_PACKAGE}.ibkr.config:IbkrConfig", extra="ibkr", sdk="ib_async", signs_requests=False,
              emulator=f"{EMULATORS_PACKAGE}.ibkr:IbkrEmulator", order_groups=frozenset(GroupKind)),
)}

# The venue a fleet runs when none is named: it needs nothing installed, configured or reachable.
DEFAULT_VENUE = "paper"


def venue_spec(name: str) -> VenueSpec:
    """The spec of `name`; any other ccxt exchange id gets the ccxt connector's."""
    spec = VENUE_SPECS.get(name)
    if spec is not None:
        return spec
    if _is_ccxt_exchange(name):
        return _ccxt(name)
    raise ValueError(f"unknown venue {name!r}; known venues: {', '.join(sorted(VENUE_SPECS))} or any ccxt exchange id")


def emulated_venues() -> list[str]:
    return sorted(name for name, spec in VENUE_SPECS.items() if spec.emulator is not None)


def _is_ccxt_exchange(name: str) -> bool:
    try:
        import ccxt
    except ImportError:  # the ccxt extra is not installed
        return False
    return name in ccxt.exchanges

"""The venue template (connector/venues/_template/) is a complete venue once copied: a copy
under a throw-away name, with its spec line registered, resolves, decodes its settings, maps
its codes onto the taxonomy and joins the conformance suite."""

from __future__ import annotations

import importlib
import inspect
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradebus.schemas.values import RejectReason
from tradebus.services.connector import venuespecs
from tradebus.services.connector.codes import Outcome
from tradebus.services.connector.errors import AuthFailed, OrderRefused, OutcomeUnknown, VenueBusy
from tradebus.services.connector.remote import RemoteVenueConnector
from tradebus.services.connector.venuespecs import VenueSpec, venue_spec
from tradebus.services.settings import Settings, venue_config
from tradebus.shared.config import ConfigError, Secret

from ..conformance.testbed import venues_under_test
from .test_venue_specs import declared_config

TEMPLATE = Path(venuespecs.__file__).parent / "venues" / "_template"
VENUE = "throwaway_venue"


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VenueSpec]:
    """The template copied as package `throwaway_venue` and its spec line registered."""
    shutil.copytree(TEMPLATE, tmp_path / VENUE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = VenueSpec(name=VENUE, connector=f"{VENUE}.connector:TemplateConnector",
                     config=f"{VENUE}.config:TemplateConfig")
    monkeypatch.setitem(venuespecs.VENUE_SPECS, VENUE, spec)
    yield spec
    for module in [name for name in sys.modules if name.partition(".")[0] == VENUE]:  # each test imports its own copy
        del sys.modules[module]


def test_the_template_is_no_venue() -> None:
    with pytest.raises(ValueError, match="unknown venue"):
        venue_spec("_template")


def test_a_copy_resolves_with_every_primitive(spec: VenueSpec) -> None:
    assert venue_spec(VENUE) is spec
    connector = spec.connector_class()
    assert issubclass(connector, RemoteVenueConnector) and not inspect.isabstract(connector)
    # read from the ABC itself: dir() can list names a class does not resolve (zope.interface's
    # `__provides__`, once Twisted is imported by kiteconnect)
    primitives = set(RemoteVenueConnector.__abstractmethods__)
    assert primitives and all(name in vars(connector) for name in primitives), primitives - set(vars(connector))
    assert declared_config(connector) is spec.config_class()


def test_a_copy_decodes_its_settings_table(spec: VenueSpec) -> None:
    settings = Settings(venues={VENUE: {"account": "acct-1", "api_key": "k", "rest_url": "http://127.0.0.1:1",
                                        "subscribe": ["*"], "resilience": {"busy_retries": 2}}})
    config = venue_config(settings, VENUE, env={f"TRADEBUS_VENUES__{VENUE.upper()}__WS_URL": "ws://127.0.0.1:1"})
    assert isinstance(config, spec.config_class())
    assert (config.account, config.api_key, config.ws_url, config.resilience.busy_retries) == (
        "acct-1", Secret("k"), "ws://127.0.0.1:1", 2)
    with pytest.raises(ConfigError, match="no_such_key"):
        venue_config(Settings(venues={VENUE: {"no_such_key": 1}}), VENUE, env={})


def test_a_copy_maps_its_codes_onto_the_taxonomy(spec: VenueSpec) -> None:
    codes = importlib.import_module(f"{VENUE}.codes")
    assert codes.CODES.codes
    for code, rule in codes.CODES.codes.items():
        assert isinstance(rule.outcome, Outcome) and (rule.outcome is Outcome.REFUSED) == (rule.reason is not None)
        error = codes.venue_error(code, f"{code} said the venue", changes_state=True)
        expected = {Outcome.REFUSED: OrderRefused, Outcome.RETRYABLE: VenueBusy, Outcome.UNKNOWN: OutcomeUnknown,
                    Outcome.AUTH: AuthFailed}[rule.outcome]
        assert isinstance(error, expected) and error.venue_code == code
    unknown = codes.venue_error("never_documented", "?", changes_state=True)
    assert isinstance(unknown, OutcomeUnknown), "a code no table knows may have acted: looked up, not rejected"
    refusal = codes.venue_error("order_not_found", "gone", changes_state=True)
    assert isinstance(refusal, OrderRefused) and refusal.reason is RejectReason.UNKNOWN_ORDER


def test_the_conformance_suite_lists_a_copy(spec: VenueSpec) -> None:
    assert VENUE in venues_under_test()

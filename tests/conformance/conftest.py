"""The venues under test: every venue with a spec, a remote one through its emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest

from tradebus.services.connector.venuespecs import venue_spec
from tradebus.shared.natsserver import NatsServer

from .testbed import API_KEY, API_SECRET, VenueUnderTest, venues_under_test


@pytest.fixture(params=venues_under_test())
async def testbed(request: pytest.FixtureRequest, nats_server: NatsServer) -> AsyncIterator[VenueUnderTest]:
    venue = request.param
    spec = venue_spec(venue)
    emulator, secret = None, API_SECRET
    if not spec.embedded:
        if spec.emulator is None:  # said, not hidden: the venue is not conformance-tested yet
            pytest.skip(f"{venue}: its spec names no emulator yet (venues/_template/README.md, step 4)")
        try:
            emulator_type = spec.emulator_class()
            spec.connector_class()
        except ModuleNotFoundError as exc:  # a venue whose folder is not written yet: said, not hidden
            pytest.skip(f"{venue}: its emulator or connector is missing ({exc.name} not found)")
        secret = emulator_type.issue_secret(API_SECRET)  # in the venue's form (Fyers: a JWT access token)
        emulator = emulator_type.create(credentials={API_KEY: secret}, tick_interval=0.05)
        await emulator.start()
    nc = await nats.connect(nats_server.url)
    bed = VenueUnderTest(venue, nats_server, nc, emulator, secret)
    try:
        await bed.watch_events()
        await bed.watch_quotes()
        yield bed
    finally:
        await nc.close()
        if emulator is not None:
            await emulator.stop()


@pytest.fixture
async def remote(testbed: VenueUnderTest) -> VenueUnderTest:
    """A venue reached over a network through its emulator (faults, reconnects, auth)."""
    if testbed.emulator is None:
        pytest.skip(f"{testbed.venue}: no remote API to fail, reconnect or authenticate (simulated in-process)")
    return testbed

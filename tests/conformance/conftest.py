"""The venues under test: paper (no emulator) and every emulated remote venue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest

from tradebus.emulators.registry import emulator_class
from tradebus.services.connector.registry import connector_class
from tradebus.shared.natsserver import NatsServer

from .testbed import API_KEY, API_SECRET, REMOTE_VENUES, VenueUnderTest


@pytest.fixture(params=["paper", *REMOTE_VENUES])
async def testbed(request: pytest.FixtureRequest, nats_server: NatsServer) -> AsyncIterator[VenueUnderTest]:
    venue = request.param
    emulator = None
    if venue != "paper":
        try:
            emulator_type = emulator_class(venue)
            connector_class(venue)
        except ModuleNotFoundError as exc:  # a venue whose folder is not written yet: said, not hidden
            pytest.skip(f"{venue}: its emulator or connector is missing ({exc.name} not found)")
        emulator = emulator_type.create(credentials={API_KEY: API_SECRET}, tick_interval=0.05)
        await emulator.start()
    nc = await nats.connect(nats_server.url)
    bed = VenueUnderTest(venue, nats_server, nc, emulator)
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

"""Reference data on demand and shared market-data streams, on a real nats-server.

A client that starts after the connector learns the instruments (on subscribe, by query,
from the CLI); a stream is published while any subscriber holds interest in it, and
interest that is not renewed expires, so a crashed client pins nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from decimal import Decimal

import msgspec
import nats
import pytest

from tradebus.client import Client, QueryError
from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode, reply_decoder
from tradebus.schemas.control import GetInstruments, ListInstruments, Subscribe, SubscriptionReply, Unsubscribe
from tradebus.schemas.market import Instrument, Quote
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import MarketDataKind
from tradebus.services.connector.config import ConnectorConfig
from tradebus.services.risk.service import RiskService
from tradebus.services.settings import Settings
from tradebus.shared.natsserver import NatsServer
from tradebus.simulator.rules import InstrumentSpec

from ..conftest import REPO
from .helpers import (
    collect,
    flowing,
    market_decoder,
    paper_settings,
    running_connector,
    running_service,
    stopped,
    wait_until,
)

BRK = "BRK.B"
QUOTE = [MarketDataKind.QUOTE]
_subscription_reply = reply_decoder(Family.MARKET_DATA_CONTROL)
_instruments_reply = reply_decoder(Family.INSTRUMENTS)


def on_demand(nats_url: str, lease: float = 60.0) -> Settings:
    """A paper venue that publishes nothing until asked, with this subscription lease."""
    settings = paper_settings(nats_url, subscribe=[])
    return msgspec.structs.replace(settings, connector=ConnectorConfig(subscription_lease=lease))


async def control(nc: nats.NATS, request: msgspec.Struct | bytes) -> SubscriptionReply:
    data = request if isinstance(request, bytes) else encode(request)
    return _subscription_reply.decode((await nc.request(subjects.market_data_control("paper"), data, timeout=5)).data)


# --- reference data ---------------------------------------------------------------------------
async def test_a_client_starting_after_the_connector_gets_instruments_on_subscribe(nats_server: NatsServer) -> None:
    async with running_connector(on_demand(nats_server.url)) as service:
        nc = await nats.connect(nats_server.url)  # connects only now: the start-up publication is long gone
        definitions = await collect(nc, subjects.market_data_filter("paper", MarketDataKind.INSTRUMENT), market_decoder.decode)
        reply = await control(nc, Subscribe(symbols=[BRK, "ETH/USDT"], kinds=[MarketDataKind.INSTRUMENT], subscriber="late"))
        assert reply.ok and reply.lease_ms == 60_000
        await definitions.wait_for(lambda ms: len(ms) >= 2)
        by_symbol = {m.symbol: m for m in definitions.messages}
        assert set(by_symbol) == {BRK, "ETH/USDT"}
        spec = next(s for s in service.connector.config.instruments if s.symbol == BRK)
        brk = by_symbol[BRK]
        assert isinstance(brk, Instrument) and brk.seq >= 2, "numbered after the start-up publication"
        assert (brk.tick_size, brk.lot_size, brk.min_notional) == (spec.tick_size, spec.lot_size, spec.min_notional)

        await control(nc, Subscribe(symbols=[BRK], kinds=[MarketDataKind.INSTRUMENT], subscriber="late"))  # a renewal
        await control(nc, Subscribe(symbols=[BRK], kinds=[MarketDataKind.INSTRUMENT], subscriber="other"))
        await definitions.wait_for(lambda ms: len(ms) >= 3)
        await asyncio.sleep(0.3)
        assert len(definitions.messages) == 3, "a renewal sends nothing new; a new subscriber gets the definition"
        assert definitions.messages[-1].seq == brk.seq + 1
        await nc.close()


async def test_instruments_are_answered_by_query_all_or_by_symbol(nats_server: NatsServer) -> None:
    async with running_connector(on_demand(nats_server.url)) as service:
        nc = await nats.connect(nats_server.url)

        async def ask(data: bytes) -> object:
            return _instruments_reply.decode((await nc.request(subjects.instruments("paper"), data, timeout=5)).data)

        everything = await ask(encode(GetInstruments()))
        assert everything.ok
        assert [i.symbol for i in everything.instruments] == [s.symbol for s in service.connector.config.instruments]
        assert all(i.seq == 0 and i.ts_event > 0 for i in everything.instruments)

        some = await ask(encode(GetInstruments(symbols=[BRK, "NOPE", BRK])))
        assert not some.ok and some.unknown_symbols == ["NOPE"] and [i.symbol for i in some.instruments] == [BRK]

        for garbage in (b"{", b'{"type":"get_instruments","symbols":"BRK.B"}', b'{"type":"get_instruments","colour":1}'):
            refused = await ask(garbage)
            assert not refused.ok and refused.error and refused.instruments == []

        async with Client(nc) as client:
            (brk,) = await client.instruments("paper", [BRK])
            assert brk.tick_size == Decimal("0.01") and str(brk.lot_size) == "1"
            with pytest.raises(QueryError, match="NOPE"):
                await client.instruments("paper", ["NOPE"])
            with pytest.raises(QueryError, match="no connector of venue 'nowhere'"):
                await client.instruments("nowhere", timeout=1)
        assert service.connector is not None  # the garbage did not stop it


async def tradebus(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebus.cli.main", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_prints_instruments_with_exact_decimals(nats_server: NatsServer, cli_env: dict[str, str]) -> None:
    settings = on_demand(nats_server.url)
    tiny = InstrumentSpec(symbol="TINY/USDT", base="TINY", quote="USDT", tick_size=Decimal("0.000000001"),
                          lot_size=Decimal("1000"), min_quantity=Decimal("1000"), min_notional=Decimal("0.5"),
                          initial_price=Decimal("0.000012345"))
    settings = msgspec.structs.replace(
        settings, paper=msgspec.structs.replace(settings.paper, instruments=[*settings.paper.instruments, tiny]))
    async with running_connector(settings):
        code, out, err = await tradebus("instruments", "--venue", "paper", env=cli_env)
        assert code == 0, err
        header, *rows = out.splitlines()
        assert header.split() == ["symbol", "venue_symbol", "asset_class", "base", "quote", "tick_size", "lot_size",
                                  "min_quantity", "min_notional"]
        assert len(rows) == len(settings.paper.instruments)
        tiny = next(row.split() for row in rows if row.startswith("TINY/USDT"))
        assert tiny[5:] == ["0.000000001", "1000", "1000", "0.5"], "decimals exactly, no float, no exponent"

        code, out, err = await tradebus("instruments", "--venue", "paper", "--symbol", BRK, "--json", env=cli_env)
        assert code == 0, err
        (line,) = out.splitlines()
        brk = msgspec.json.decode(line, type=Instrument)
        assert brk.symbol == BRK and json.loads(line)["tick_size"] == "0.01"

        code, out, err = await tradebus("instruments", "--venue", "paper", "--symbol", "NOPE", env=cli_env)
        assert code == 1 and "NOPE" in err and out == ""
        code, out, err = await tradebus("instruments", "--venue", "nowhere", "--timeout", "1", env=cli_env)
        assert code == 1 and "no connector of venue 'nowhere'" in err


# --- shared streams -----------------------------------------------------------------------------
async def test_one_subscriber_leaving_does_not_stop_the_stream_for_another(nats_server: NatsServer) -> None:
    async with running_connector(on_demand(nats_server.url)) as service:
        nc = await nats.connect(nats_server.url)
        quotes = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, BRK), market_decoder.decode)
        assert (await control(nc, Subscribe(symbols=[BRK], kinds=QUOTE, subscriber="alice"))).ok
        assert (await control(nc, Subscribe(symbols=[BRK], kinds=QUOTE, subscriber="bob"))).ok
        await flowing(quotes, BRK)

        reply = await control(nc, Unsubscribe(symbols=[BRK], kinds=QUOTE, subscriber="alice"))
        assert [(s.symbol, s.kinds) for s in reply.subscriptions] == [(BRK, QUOTE)]
        await control(nc, Unsubscribe(symbols=[BRK], kinds=QUOTE))  # the anonymous subscriber never held it
        await control(nc, Unsubscribe(symbols=[BRK], kinds=QUOTE, subscriber="alice"))  # twice
        await flowing(quotes, BRK, count=5)
        assert service.counters()["subscription_leases"] == 1

        reply = await control(nc, Unsubscribe(symbols=[BRK], kinds=QUOTE, subscriber="bob"))
        assert reply.ok and reply.subscriptions == []
        await stopped(quotes)
        await nc.close()


async def test_a_bad_subscriber_id_is_refused_and_holds_nothing(nats_server: NatsServer) -> None:
    async with running_connector(on_demand(nats_server.url)) as service:
        nc = await nats.connect(nats_server.url)
        for bad in ("#config", "has space", "x" * 65):
            reply = await control(nc, json.dumps({"type": "subscribe", "symbols": [BRK], "subscriber": bad}).encode())
            assert not reply.ok and "subscriber" in reply.error and reply.subscriptions == []
        assert service.counters()["subscription_leases"] == 0
        await nc.close()


async def test_interest_not_renewed_expires_and_the_stream_stops(nats_server: NatsServer) -> None:
    lease = 1.0
    async with running_connector(on_demand(nats_server.url, lease=lease)) as service:
        nc = await nats.connect(nats_server.url)
        quotes = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, BRK), market_decoder.decode)
        reply = await control(nc, Subscribe(symbols=[BRK], kinds=QUOTE, subscriber="gone-quiet"))
        assert reply.lease_ms == 1000
        async with Client(nc).subscription("paper", [BRK], QUOTE) as renewing:
            # Three leases later both are... only the renewing one still holds the stream.
            await asyncio.sleep(3 * lease)
            assert renewing.renewals >= 5
            assert service.counters()["subscription_leases"] == 1
            await flowing(quotes, BRK)
        # the renewing subscriber released on leaving: nobody is left
        await stopped(quotes)

        await control(nc, Subscribe(symbols=[BRK], kinds=QUOTE, subscriber="crashes"))
        await flowing(quotes, BRK)
        started = time.monotonic()
        await wait_until(lambda: service.counters()["subscription_leases"] == 0, "the lease expired", timeout=5 * lease)
        assert time.monotonic() - started >= lease * 0.5
        await stopped(quotes)
        assert (await control(nc, ListInstruments())).subscriptions == []
        await nc.close()


async def test_the_python_client_holds_its_stream_while_iterating(nats_server: NatsServer) -> None:
    lease = 0.6
    async with running_connector(on_demand(nats_server.url, lease=lease)):
        nc = await nats.connect(nats_server.url)
        watcher = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, BRK), market_decoder.decode)
        client = await Client.connect(nats_server.url)
        started = time.monotonic()
        async with contextlib.aclosing(client.market_data(venue="paper", kind=MarketDataKind.QUOTE, symbol=BRK)) as stream:
            async for quote in stream:
                assert isinstance(quote, Quote) and quote.symbol == BRK
                if time.monotonic() - started > 4 * lease:  # still flowing long after the first lease ran out
                    break
        await stopped(watcher)

        with pytest.raises(QueryError, match="NOPE"):
            async for _ in client.market_data(venue="paper", kind=MarketDataKind.QUOTE, symbol="NOPE"):
                pass
        await client.close()
        await nc.close()


async def test_a_killed_client_process_stops_pinning_its_stream(nats_server: NatsServer, cli_env: dict[str, str]) -> None:
    """`tradebus ticks` holds (and renews) a lease; SIGKILL gives it no chance to unsubscribe."""
    lease = 1.0
    async with running_connector(on_demand(nats_server.url, lease=lease)) as service:
        nc = await nats.connect(nats_server.url)
        quotes = await collect(nc, subjects.market_data("paper", MarketDataKind.QUOTE, BRK), market_decoder.decode)
        ticks = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tradebus.cli.main", "ticks", "--venue", "paper", "--symbol", BRK, "--kind", "quote",
            env=cli_env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_until(lambda: service.counters()["subscription_leases"] == 1, "ticks subscribed", timeout=20)
            await asyncio.sleep(3 * lease)
            await flowing(quotes, BRK)  # renewed past three leases
            ticks.send_signal(signal.SIGKILL)
            await ticks.wait()
            await wait_until(lambda: service.counters()["subscription_leases"] == 0, "the lease expired", timeout=5 * lease)
            await stopped(quotes)
        finally:
            if ticks.returncode is None:
                ticks.kill()
                await ticks.wait()
        await nc.close()


async def test_the_raw_protocol_python_snippet_renews_and_releases_its_lease(
    nats_server: NatsServer, cli_env: dict[str, str]
) -> None:
    """docs/raw-protocol.md teaches other languages the lease: its snippet, run as written."""
    (snippet,) = re.findall(r"^```python\n(.*?)^```", (REPO / "docs" / "raw-protocol.md").read_text(), flags=re.S | re.M)
    lease = 1.0
    settings = on_demand(nats_server.url, lease=lease)  # BRK.B on demand; BTC/USDT quoted for risk
    settings = msgspec.structs.replace(settings, paper=msgspec.structs.replace(settings.paper, subscribe=["BTC/USDT"]))
    async with running_connector(settings) as service, running_service(RiskService(settings)) as risk:
        # Risk leases the quotes of what it routes (the snippet's BTC/USDT order): held first,
        # so that the count below moves with the snippet's own lease only.
        before = service.counters()["subscription_leases"]
        risk.references.hold("paper", "BTC/USDT")
        await wait_until(lambda: service.counters()["subscription_leases"] == before + 1, "risk's quote lease", 30)
        pinned = service.counters()["subscription_leases"]
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", snippet, env=cli_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        await wait_until(lambda: service.counters()["subscription_leases"] == pinned + 1, "the snippet subscribed", 30)
        await asyncio.sleep(2 * lease)
        assert service.counters()["subscription_leases"] == pinned + 1, "renewed past two leases"
        out, err = await asyncio.wait_for(client.communicate(), 30)
        assert client.returncode == 0, err.decode()
        assert service.counters()["subscription_leases"] == pinned, "released on leaving, before the lease ran out"
    assert "stored as CMD" in out.decode() and "BRK.B" in out.decode()

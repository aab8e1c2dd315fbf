"""Fyers' data socket (HSM) as the connector speaks it (venues/fyers/hsm.py), against
fyers-apiv3's own FyersDataSocket:

- every request frame the connector sends is the SDK's, byte for byte;
- every frame of the corpus (corpus/data-socket, each naming its source) gives, through the
  SDK's own parser, Fyers' documented sample, and through the connector's decoder the same
  values (exact decimals where the SDK gives floats), emitted when the SDK emits;
- the decoded feeds become the quote, trade and five-level book the connector publishes;
- the data-frame acknowledgement is the SDK's frame, due when the SDK sends it;
- the emulator's data socket serves the unmodified SDK: authentication, symbol look-up,
  snapshots and updates of a symbol and its five-level depth, acknowledgements.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fyers_apiv3.FyersWebsocket import data_ws

from tradebus.emulators.fyers import FyersEmulator
from tradebus.services.connector.venues.fyers import hsm, parsing

CORPUS = Path(__file__).parent / "corpus" / "data-socket"
RECORDINGS = sorted(CORPUS.glob("*.json"))
APP_ID = "XA00001-100"
# What the SDK adds to a feed that the wire does not carry: the change since the previous
# close (computed), the circuit limits (always 0) and its own names of type and symbol.
DERIVED = {"ch", "chp", "lower_ckt", "upper_ckt", "type", "symbol"}


def sdk_socket(tmp_path: Path, *, lite: bool = False, token: str | None = None) -> tuple[Any, list[Any]]:
    """A fresh FyersDataSocket (the class is a singleton) whose callbacks collect its output."""
    received: list[Any] = []
    data_ws.FyersDataSocket._instance = None
    socket = data_ws.FyersDataSocket(access_token=f"{APP_ID}:{token or FyersEmulator.issue_secret('t')}",
                                     log_path=str(tmp_path), litemode=lite, reconnect=False,
                                     on_message=received.append, on_error=received.append)
    return socket, received


def recorded(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_request_frames_are_the_sdks(tmp_path: Path) -> None:
    token = FyersEmulator.issue_secret("request-frames")
    socket, _ = sdk_socket(tmp_path, token=token)
    assert socket.access_token_to_hsmtoken()
    key = hsm.hsm_key(f"{APP_ID}:{token}")
    assert hsm.auth_frame(key) == bytes(socket._FyersDataSocket__access_token_msg())
    assert hsm.SOURCE == socket.source
    assert hsm.mode_frame(lite=False) == bytes(socket._FyersDataSocket__full_mode_msg())
    assert hsm.mode_frame(lite=True) == bytes(socket._FyersDataSocket__lite_mode_msg())
    topics = ["sf|nse_cm|3045", "dp|nse_cm|3045", "if|nse_cm|Nifty 50"]
    app_token = f"{APP_ID}:{token}"
    assert hsm.topics_frame(hsm.SUBSCRIBE, topics, app_token) == bytes(socket._FyersDataSocket__subscription_msg(topics))
    assert hsm.topics_frame(hsm.UNSUBSCRIBE, topics[:1], app_token) == bytes(
        socket._FyersDataSocket__unsubscription_msg(topics[:1]))
    assert hsm.ack_frame(123456) == bytes(socket._FyersDataSocket__ackowledgement_msg(123456))


def test_topics_follow_the_sdks_rule() -> None:
    assert hsm.topic("NSE:SBIN-EQ", "10100000003045", depth=False) == "sf|nse_cm|3045"
    assert hsm.topic("NSE:SBIN-EQ", "10100000003045", depth=True) == "dp|nse_cm|3045"
    assert hsm.topic("NSE:NIFTY26DECFUT", "101126122935003", depth=False) == "sf|nse_fo|35003"
    assert hsm.topic("NSE:NIFTY50-INDEX", "101000000026000", depth=False) == "if|nse_cm|Nifty 50"
    with pytest.raises(ValueError, match="no market depth"):
        hsm.topic("NSE:NIFTY50-INDEX", "101000000026000", depth=True)
    with pytest.raises(ValueError, match="not streamed"):
        hsm.topic("XXX:FOO-EQ", "99990000000001", depth=False)


def test_an_access_token_without_an_hsm_key_or_expired_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Fyers JWT"):
        hsm.hsm_key(f"{APP_ID}:opaque-token")
    token = FyersEmulator.issue_secret("expiry")
    with pytest.raises(ValueError, match="expired"):
        hsm.hsm_key(token, now=5_000_000_000)


def _as_sdk(value: Decimal | int) -> float | int:
    return float(value) if isinstance(value, Decimal) else value


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_each_frame_decodes_as_the_sdk_parses_it_into_the_documented_sample(path: Path, tmp_path: Path) -> None:
    data = recorded(path)
    socket, sdk_out = sdk_socket(tmp_path, lite=data["lite"])
    socket.symbol_token = dict(data["topics"])
    decoder = hsm.HsmDecoder()
    ours: list[hsm.Reply | hsm.Ack | hsm.Feed] = []
    for frame in map(bytes.fromhex, data["frames"]):
        socket._FyersDataSocket__response_msg(bytearray(frame))
        ours += decoder.decode(frame)
    # the SDK's parser gives the documented sample: every documented key, as a number
    assert len(sdk_out) == len(data["expect"])
    for expected, given in zip(data["expect"], sdk_out, strict=True):
        for key, value in expected.items():
            if key in ("type", "symbol", "message", "s"):
                assert given[key] == value, (path.stem, key)
            else:  # the docs round the computed change to 2 places, this SDK to 4
                assert given[key] == pytest.approx(float(value), abs=0.005 if key in ("ch", "chp") else 1e-9), (
                    path.stem, key)
    # the connector's decoder gives the same, emitted when the SDK emits
    events = [e for e in ours if not isinstance(e, hsm.Ack)]
    assert len(events) == len(sdk_out)
    for event, given in zip(events, sdk_out, strict=True):
        if isinstance(event, hsm.Reply):
            assert event.ok == (given["s"] == "ok")
            continue
        assert data["topics"][event.topic] == given["symbol"] and event.kind == given["type"]
        for key in set(given) - DERIVED:
            assert _as_sdk(event.values[key]) == given[key], (path.stem, key)


def feeds(name: str) -> list[hsm.Feed]:
    decoder = hsm.HsmDecoder()
    frames = map(bytes.fromhex, recorded(CORPUS / f"{name}.json")["frames"])
    return [event for frame in frames for event in decoder.decode(frame) if isinstance(event, hsm.Feed)]


def test_the_feeds_give_the_quote_trade_and_book_published() -> None:
    first, second = feeds("symbol-update")
    quote = parsing.quote("fyers", "NSE:SBIN-EQ", first, 1)
    assert quote is not None
    assert (str(quote.bid), str(quote.bid_size), str(quote.ask), str(quote.ask_size)) == ("606.4", "2081", "606.45", "903")
    assert quote.ts_event == 1690953622 * 10**9  # the exchange's feed time
    # the first feed is the volume's baseline: the second's growth is the trade
    assert parsing.trade("fyers", "NSE:SBIN-EQ", first, None, 1) is None
    trade = parsing.trade("fyers", "NSE:SBIN-EQ", second, parsing.volume(first, None), 1)
    assert trade is not None and (str(trade.price), str(trade.size), trade.trade_id) == ("606.45", "10", "3045222")
    (depth,) = feeds("depth-update")
    book = parsing.book("fyers", "NSE:SBIN-EQ", depth, 1, 5)
    assert [(str(level.price), str(level.size)) for level in book.bids] == [
        ("606.25", "20"), ("606.2", "902"), ("606.15", "111"), ("606.1", "110"), ("606.05", "979")]
    assert [(str(level.price), str(level.size)) for level in book.asks] == [
        ("606.3", "282"), ("606.35", "568"), ("606.4", "2910"), ("606.45", "1676"), ("606.5", "2981")]


def test_acknowledgements_are_the_sdks_frame_when_the_sdk_sends_it(tmp_path: Path) -> None:
    control = recorded(CORPUS / "control-replies.json")
    symbol = recorded(CORPUS / "symbol-update.json")
    socket, _ = sdk_socket(tmp_path)
    socket.symbol_token = dict(symbol["topics"])
    decoder = hsm.HsmDecoder()
    auth = bytes.fromhex(control["frames"][0])  # asks for an acknowledgement every 10 data frames
    socket._FyersDataSocket__response_msg(bytearray(auth))
    assert decoder.decode(auth) == [hsm.Reply(hsm.AUTH, True, ack_every=10)]
    acks: list[hsm.Ack] = []
    snapshot, update = map(bytes.fromhex, symbol["frames"])
    for frame in [snapshot] + [update] * 10:
        socket._FyersDataSocket__response_msg(bytearray(frame))
        acks += [e for e in decoder.decode(frame) if isinstance(e, hsm.Ack)]
    assert [hsm.ack_frame(a.message_number) for a in acks] == [bytes(m) for m in socket.message]
    assert [a.message_number for a in acks] == [2]


def test_a_truncated_frame_is_malformed_never_misread() -> None:
    frame = bytes.fromhex(recorded(CORPUS / "depth-update.json")["frames"][0])
    for length in range(3, len(frame) - 12):  # the trailing strings are not read
        with pytest.raises(hsm.Malformed):
            hsm.HsmDecoder().decode(frame[:length])


@pytest.fixture
def emulator() -> Iterator[FyersEmulator]:
    emulated = FyersEmulator.create(credentials={APP_ID: FyersEmulator.issue_secret("sdk-live")}, tick_interval=0.05)
    assert isinstance(emulated, FyersEmulator)
    yield emulated


async def test_the_unmodified_sdk_streams_from_the_emulator(
    emulator: FyersEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK resolves symbols at a URL fixed in its code and loads an index table from
    public.fyers.in: both are pointed at the emulator (the table: the SDK's own fallback)."""
    url = await emulator.start()
    try:
        built = data_ws.SymbolConversion.__init__

        def at_emulator(self: Any, *args: Any, **kwargs: Any) -> None:
            built(self, *args, **kwargs)
            self.symbols_token_api = f"{url}/data/symbol-token"

        monkeypatch.setattr(data_ws.SymbolConversion, "__init__", at_emulator)
        monkeypatch.setattr(data_ws.SymbolConversion, "_index_hsm_mapping_cache", {})
        socket, received = sdk_socket(tmp_path, token=emulator.venue.credentials[APP_ID])
        socket._FyersDataSocket__url = url.replace("http://", "ws://") + "/hsm/v1-5/prod"
        await asyncio.to_thread(socket.connect)
        await asyncio.to_thread(socket.subscribe, ["NSE:SBIN-EQ"], "SymbolUpdate")
        await asyncio.to_thread(socket.subscribe, ["NSE:SBIN-EQ"], "DepthUpdate")
        for _ in range(100):
            kinds = {m.get("type") for m in received if isinstance(m, dict)}
            if {"cn", "ful", "sub", "sf", "dp"} <= kinds and len(received) > 25:
                break
            await asyncio.sleep(0.1)
        feeds = [m for m in received if isinstance(m, dict) and m.get("type") in ("sf", "dp")]
        quote = next(m for m in feeds if m["type"] == "sf")
        depth = next(m for m in feeds if m["type"] == "dp")
        assert quote["symbol"] == depth["symbol"] == "NSE:SBIN-EQ"
        assert 0 < quote["bid_price"] < quote["ask_price"] and quote["bid_size"] > 0 and quote["ltp"] > 0
        assert all(depth[f"bid_price{i}"] > depth[f"bid_price{i + 1}"] for i in range(1, 5))
        assert all(depth[f"ask_price{i}"] < depth[f"ask_price{i + 1}"] for i in range(1, 5))
        assert not [m for m in received if isinstance(m, dict) and m.get("s") == "error"]
        session = emulator.data_socket.stream.sessions[0]
        assert session.acks and all(n % 10 == 0 for n in session.acks)  # the SDK acknowledged every 10th frame
        await asyncio.to_thread(socket.close_connection)
    finally:
        await emulator.stop()

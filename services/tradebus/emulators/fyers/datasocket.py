"""Fyers' data socket (HSM, `/hsm/v1-5/prod`) and its symbol look-up (`POST /data/symbol-token`),
served from the emulated market so that fyers-apiv3's own FyersDataSocket parser reads it.

Built from the protocol as fyers-apiv3's data_ws.py speaks it (its request builders and its
response parser) and the field lists of its map.json and of Fyers' docs ("Web Sockets":
Market Data Symbol / Depth Update, Lite-Mode). No frame of Fyers' own server is published:
the layouts are the SDK's, the values the emulated market's (tests/venues/fyers/corpus/
data-socket holds frames composed so that the SDK's parser gives Fyers' documented samples).

Served: authentication (the access token's `hsm_key`; the answer carries how many data
frames the client acknowledges at a time), full / lite mode, subscribe / unsubscribe of
`sf|nse_cm|<token>` (a symbol's quote) and `dp|nse_cm|<token>` (its five-level depth), a
snapshot ('S') per subscribed topic, then an update ('U', every field; lite: 'L', the last
price) per market change, channel pause / resume, acknowledgements (recorded) and pings
(no answer, as the SDK expects none). Not served: indices (`if|...`), channels other than
the subscribed one's data, Fyers' symbol limits. Prices go in paise (precision 2,
multiplier 1, as NSE cash).

Simplified: a refused authentication is answered with a non-"K" value (what Fyers sends is
not documented; the SDK reads any other value as a refusal) and the client's later requests
are ignored; an unknown topic in a subscription is skipped.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tradebus.simulator.market import MarketUpdate

from ..streams import Stream, StreamSession

# Fyers' fytokens of the listed symbols: segment 1010 (NSE cash), the exchange token from digit 11.
FYTOKENS = {"NSE:SBIN-EQ": "10100000003045", "NSE:RELIANCE-EQ": "10100000002885"}
SEGMENTS = {"1010": "nse_cm"}
# Field orders of the snapshot and update packets (the SDK's map.json `data_val`, `depthvalue`).
SYMBOL_FIELDS = ("ltp", "vol_traded_today", "last_traded_time", "exch_feed_time", "bid_size", "ask_size", "bid_price",
                 "ask_price", "last_traded_qty", "tot_buy_qty", "tot_sell_qty", "avg_trade_price", "OI", "low_price",
                 "high_price", "Yhigh", "Ylow", "lower_ckt", "upper_ckt", "open_price", "prev_close_price")
DEPTH_FIELDS = tuple(f"{side}_{what}{level}" for what in ("price", "size", "order") for side in ("bid", "ask")
                     for level in range(1, 6))
ABSENT = -(2**31)
ACK_EVERY = 10  # data frames per acknowledgement the emulator asks for (Fyers' number is not documented)
PRECISION, MULTIPLIER = 2, 1


def _reply(request: int, value: bytes = b"K", extra: bytes = b"") -> bytes:
    body = struct.pack(">BH", 1, len(value)) + value + extra
    return struct.pack(">HBB", 2 + len(body), request, 2 if extra else 1) + body


def _fields(frame: bytes) -> dict[int, bytes]:
    """A request's fields (its declared length is not trusted: the SDK writes a wrong one)."""
    values, offset = {}, 4
    for _ in range(frame[3]):
        field_id, length = struct.unpack_from(">BH", frame, offset)
        values[field_id] = frame[offset + 3: offset + 3 + length]
        offset += 3 + length
    return values


def _topics(listing: bytes) -> list[str]:
    (count,) = struct.unpack_from(">H", listing, 0)
    names, offset = [], 2
    for _ in range(count):
        names.append(listing[offset + 1: offset + 1 + listing[offset]].decode("ascii"))
        offset += 1 + listing[offset]
    return names


class Tape:
    """One symbol's market as the feed reports it, in paise and whole shares."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.symbol: dict[str, int] = dict.fromkeys(SYMBOL_FIELDS, 0)
        self.depth: dict[str, int] = dict.fromkeys(DEPTH_FIELDS, 0)
        self.traded = 0  # turnover in paise, for the average price

    def apply(self, update: MarketUpdate) -> None:
        now, s = int(time.time()), self.symbol
        for side, levels in (("bid", update.bids), ("ask", update.asks)):
            if levels is None:
                continue
            for i in range(1, 6):
                price, size = (levels[i - 1][0], levels[i - 1][1]) if i <= len(levels) else (Decimal(0), Decimal(0))
                self.depth[f"{side}_price{i}"], self.depth[f"{side}_size{i}"] = _paise(price), int(size)
                self.depth[f"{side}_order{i}"] = 1 if size else 0
            s[f"tot_{'buy' if side == 'bid' else 'sell'}_qty"] = sum(int(level[1]) for level in levels)
        s["bid_price"], s["bid_size"] = self.depth["bid_price1"], self.depth["bid_size1"]
        s["ask_price"], s["ask_size"] = self.depth["ask_price1"], self.depth["ask_size1"]
        if update.trade is not None:
            paid, shares = _paise(update.trade.price), max(1, int(update.trade.size))
            s["vol_traded_today"] += shares
            self.traded += paid * shares
            s.update(ltp=paid, last_traded_qty=shares, last_traded_time=now,
                     avg_trade_price=self.traded // s["vol_traded_today"])
            s["high_price"], s["low_price"] = max(s["high_price"], paid), min(s["low_price"] or paid, paid)
        if not s["ltp"] and s["bid_price"]:
            s["ltp"] = s["bid_price"]
        if not s["open_price"] and s["ltp"]:
            s.update(open_price=s["ltp"], prev_close_price=s["ltp"], high_price=s["ltp"], low_price=s["ltp"])
        s["exch_feed_time"] = now

    @property
    def ready(self) -> bool:
        return bool(self.symbol["ltp"])

    def values(self, kind: str) -> list[int]:
        if kind == "dp":
            return [self.depth[name] for name in DEPTH_FIELDS]
        return [ABSENT if name in ("OI", "Yhigh", "Ylow") else self.symbol[name] for name in SYMBOL_FIELDS]


def _paise(price: Decimal) -> int:
    return int(price * 10**PRECISION)


def snapshot(topic_id: int, topic: str, values: list[int], symbol: str) -> bytes:
    """An 'S' packet: the topic named, every field, multiplier and precision, then the
    exchange, exchange token and trading symbol."""
    strings = b"".join(bytes([len(text)]) + text.encode() for text in ("NSE", topic.rsplit("|", 1)[1],
                                                                       symbol.partition(":")[2]))
    return (struct.pack(">BHB", 83, topic_id, len(topic)) + topic.encode() + struct.pack(">B", len(values))
            + struct.pack(f">{len(values)}i", *values) + struct.pack(">HHB", 0, MULTIPLIER, PRECISION) + strings)


def update(topic_id: int, values: list[int]) -> bytes:
    return struct.pack(">BHB", 85, topic_id, len(values)) + struct.pack(f">{len(values)}i", *values)


def lite(topic_id: int, ltp: int) -> bytes:
    return struct.pack(">BHi", 76, topic_id, ltp)


def data_frame(message_number: int, packets: list[bytes]) -> bytes:
    body = struct.pack(">BIH", 6, message_number, len(packets)) + b"".join(packets)
    return struct.pack(">H", len(body)) + body


class HsmSession(StreamSession):
    def __init__(self, socket: web.WebSocketResponse) -> None:
        super().__init__(socket)
        self.lite = False
        self.subscribed: dict[str, tuple[int, int]] = {}  # topic -> its id on this connection, its channel
        self.paused: set[int] = set()
        self.messages = 0
        self.acks: list[int] = []


class DataSocket:
    """The data socket of the emulated venue: `stream` serves its connections; `on_market`
    follows the emulated market."""

    def __init__(self, hsm_keys: Callable[[], dict[str, str]]) -> None:
        self._hsm_keys = hsm_keys  # hsm_key -> account, of the tokens the venue issued
        self._tapes = {symbol: Tape(token[10:]) for symbol, token in FYTOKENS.items()}
        self._symbols = {f"{kind}|nse_cm|{tape.token}": symbol for symbol, tape in self._tapes.items() for kind in ("sf", "dp")}
        self._topic_ids = {topic: index for index, topic in enumerate(sorted(self._symbols), start=1)}
        self.stream: Stream[HsmSession] = Stream(self._request, session=HsmSession, decode=bytes,
                                                 frames=(WSMsgType.BINARY,), undecodable=None)

    def symbol_tokens(self, symbols: list[Any]) -> dict[str, Any]:
        """POST /data/symbol-token's answer."""
        valid = {s: FYTOKENS[s] for s in symbols if s in FYTOKENS}
        return {"s": "ok", "code": 200, "message": "", "validSymbol": valid,
                "invalidSymbol": [s for s in symbols if s not in FYTOKENS]}

    def _request(self, session: HsmSession, frame: bytes) -> None:
        try:
            kind, fields = frame[2], _fields(frame)
        except (IndexError, struct.error):
            return  # not a request (Fyers' answer to one is not documented); the SDK's ping is 3 bytes
        if kind == 1:
            account = self._hsm_keys().get(fields.get(1, b"").decode(errors="replace"))
            session.account = account
            session.send_bytes(_reply(1, b"K", struct.pack(">BHI", 2, 4, ACK_EVERY)) if account else _reply(1, b"E"))
        elif session.account is None:
            return
        elif kind == 12:
            session.lite = fields.get(2) == bytes([76])
            session.send_bytes(_reply(12))
        elif kind in (4, 5):
            channel = fields.get(2, b"\x0b")[0]
            self._subscription(session, kind, _topics(fields.get(1, b"\x00\x00")), channel)
        elif kind in (7, 8):
            (mask,) = struct.unpack(">Q", fields.get(1, bytes(8)))
            channels = {bit for bit in range(64) if mask >> bit & 1}
            session.paused = session.paused | channels if kind == 7 else session.paused - channels
            session.send_bytes(_reply(kind))
        elif kind == 3:
            session.acks.append(struct.unpack(">I", fields.get(1, bytes(4)))[0])

    def _subscription(self, session: HsmSession, kind: int, topics: list[str], channel: int) -> None:
        known = [topic for topic in topics if topic in self._symbols]
        if kind == 5:
            for topic in known:
                session.subscribed.pop(topic, None)
            session.send_bytes(_reply(5))
            return
        session.send_bytes(_reply(4))
        packets = []
        for topic in known:
            session.subscribed[topic] = (self._topic_ids[topic], channel)
            tape = self._tapes[self._symbols[topic]]
            if tape.ready:
                packets.append(snapshot(self._topic_ids[topic], topic, tape.values(topic[:2]), self._symbols[topic]))
        if packets:
            self._send(session, packets)

    def on_market(self, market: MarketUpdate) -> None:
        tape = self._tapes.get(market.symbol)
        if tape is None:
            return
        was_ready = tape.ready
        tape.apply(market)
        for session in self.stream.sessions:
            packets = []
            for topic, (topic_id, channel) in session.subscribed.items():
                if self._symbols[topic] != market.symbol or channel in session.paused:
                    continue
                if not was_ready:
                    packets.append(snapshot(topic_id, topic, tape.values(topic[:2]), market.symbol))
                elif session.lite:
                    packets += [lite(topic_id, tape.symbol["ltp"])] if topic[:2] == "sf" else []
                else:
                    packets.append(update(topic_id, tape.values(topic[:2])))
            if packets:
                self._send(session, packets)

    @staticmethod
    def _send(session: HsmSession, packets: list[bytes]) -> None:
        session.messages += 1
        session.send_bytes(data_frame(session.messages, packets))

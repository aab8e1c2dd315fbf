"""Fyers' data socket protocol (HSM, `wss://socket.fyers.in/hsm/v1-5/prod`): the frames a
client sends, and the server's frames decoded into typed values.

Learned from fyers-apiv3's FyersDataSocket (data_ws.py, 3.x) and Fyers' API docs (myapi.fyers.in
/docsv3, "Web Sockets": Market Data Symbol / Indices / Depth Update, Lite-Mode). The client
frames here are the SDK's byte for byte, and `HsmDecoder` gives the values the SDK's parser
hands to `on_message` (tests/venues/fyers/test_data_socket.py compares both on every frame of
the corpus), with exact decimals where the SDK divides into floats.

Framing (big-endian): every frame is a 2-byte length, a 1-byte type, a 1-byte field count and
fields of (1-byte id, 2-byte length, value). Requests: 1 authenticate (the access token's
`hsm_key`, mode "P", 1, the client's source name), 3 acknowledge (a message number), 4 / 5
subscribe / unsubscribe (a list of 1-byte-length topic names and a channel), 11 ping (the
three bytes 0 1 11), 12 full / lite mode (a channel bit mask and 70 / 76). The server answers
1, 4, 5, 12 with the field value "K" when it succeeded (1 also with how many data frames the
client acknowledges at a time), 51 with a custom message (code, text, the request type it
answers), and streams 6: data frames of a 4-byte message number, a 2-byte count and packets:
  83 'S' snapshot: 2-byte topic id, topic name, 1-byte field count, 4-byte signed fields,
     2 bytes, 2-byte multiplier, 1-byte precision, then exchange, token and symbol strings;
  85 'U' update: topic id, field count, fields (-2^31: not sent, keep the last value);
  76 'L' lite: topic id, the last price.
Topics are `sf|<segment>|<token>` (a symbol's quote), `dp|<segment>|<token>` (its five-level
depth) and `if|<segment>|<index name>` (an index). A price field is an integer divided by
10^precision * multiplier (paise for NSE cash). Field orders are the SDK's (its map.json).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from decimal import Decimal
from importlib import resources
from typing import Any

import msgspec

# The SDK's field tables (fyers_apiv3/FyersWebsocket/map.json): read from the installed SDK,
# so the decoder follows the protocol version the SDK speaks.
_MAP: dict[str, Any] = json.loads(resources.files("fyers_apiv3.FyersWebsocket").joinpath("map.json").read_text())
FIELDS: dict[str, tuple[str, ...]] = {
    "sf": tuple(name for name in _MAP["data_val"] if name not in ("type", "symbol")),
    "if": tuple(name for name in _MAP["index_val"] if name not in ("type", "symbol")),
    "dp": tuple(name for name in _MAP["depthvalue"] if name not in ("type", "symbol")),
}
# The fields that are prices (divided by 10^precision * multiplier), per topic kind.
PRICES: dict[str, frozenset[str]] = {
    "sf": frozenset({"ltp", "bid_price", "ask_price", "avg_trade_price", "low_price", "high_price", "open_price",
                     "prev_close_price"}),
    "if": frozenset({"ltp", "prev_close_price", "high_price", "low_price", "open_price"}),
    "dp": frozenset(name for name in FIELDS["dp"] if "_price" in name),
}
SEGMENTS: dict[str, str] = _MAP["exch_seg_dict"]  # the fytoken's first four digits -> HSM segment
INDEX_NAMES: dict[str, str] = _MAP["index_dict"]  # NSE:NIFTY50-INDEX -> "Nifty 50"
ABSENT = -(2**31)  # a field the frame does not carry
SOURCE = "PythonSDK-3.2.0"  # the client name the SDK sends; Fyers documents no other
CHANNEL = 11  # the SDK's default channel
PING = bytes([0, 1, 11])
AUTH, ACK, SUBSCRIBE, UNSUBSCRIBE, DATA, MODE, CUSTOM = 1, 3, 4, 5, 6, 12, 51
SNAPSHOT, UPDATE, LITE = 83, 85, 76
FULL_MODE, LITE_MODE = 70, 76


class Reply(msgspec.Struct, frozen=True):
    """The server's answer to a request of type `request`."""

    request: int
    ok: bool
    message: str = ""
    ack_every: int = 0  # authentication: acknowledge every n data frames (0: never)


class Ack(msgspec.Struct, frozen=True):
    """An acknowledgement is due for data frame `message_number`."""

    message_number: int


class Feed(msgspec.Struct, frozen=True):
    """A topic's values after a packet that changed them: every field known so far, prices
    in rupees. `snapshot`: the server's full picture (after a subscribe or a reconnect)."""

    topic: str
    kind: str  # sf, dp, if
    values: dict[str, Decimal | int]
    snapshot: bool


class Malformed(ValueError):
    """A frame that does not follow the layout."""


# --- requests ---------------------------------------------------------------------------------
def _field(field_id: int, value: bytes) -> bytes:
    return struct.pack(">BH", field_id, len(value)) + value


def auth_frame(hsm_key: str) -> bytes:
    body = _field(1, hsm_key.encode()) + _field(2, b"P") + _field(3, b"\x01") + _field(4, SOURCE.encode())
    return struct.pack(">HBB", 2 + len(body), AUTH, 4) + body


def mode_frame(*, lite: bool, channel: int = CHANNEL) -> bytes:
    """Full or lite mode for a channel. The SDK writes 0 as this frame's length."""
    body = _field(1, struct.pack(">Q", 1 << channel)) + _field(2, bytes([LITE_MODE if lite else FULL_MODE]))
    return struct.pack(">HBB", 0, MODE, 2) + body


def topics_frame(request: int, topics: list[str], access_token: str, channel: int = CHANNEL) -> bytes:
    """Subscribe (4) or unsubscribe (5) topics on a channel. The length the SDK writes is not
    the frame's (18 + the topic list + the `appid:token` string + the source name); Fyers'
    server reads the fields, and this frame is the SDK's exactly."""
    names = b"".join(bytes([len(topic)]) + topic.encode("ascii") for topic in topics)
    listing = struct.pack(">H", len(topics)) + names
    declared = 18 + len(listing) + len(access_token) + len(SOURCE)
    return struct.pack(">HBB", declared, request, 2) + _field(1, listing) + _field(2, bytes([channel]))


def ack_frame(message_number: int) -> bytes:
    return struct.pack(">HBB", 9, ACK, 1) + _field(1, struct.pack(">I", message_number))


# --- the access token ----------------------------------------------------------------------------
def hsm_key(access_token: str, now: float | None = None) -> str:
    """The `hsm_key` claim of a Fyers access token (a JWT; `appid:` before it is dropped), as
    the SDK reads it. ValueError if the token is no JWT with that claim, or has expired."""
    token = access_token.rpartition(":")[2]
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the access token is not a Fyers JWT")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "==="))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("the access token's claims do not decode") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("hsm_key"), str):
        raise ValueError("the access token carries no hsm_key")
    if isinstance(claims.get("exp"), int) and claims["exp"] < (time.time() if now is None else now):
        raise ValueError("the access token has expired")
    return str(claims["hsm_key"])


def topic(symbol: str, fytoken: str, *, depth: bool) -> str:
    """The HSM topic of a symbol from its fytoken (`10100000003045`: segment 1010, exchange
    token from the eleventh digit), as the SDK builds it. ValueError for a segment the socket
    does not carry, and for an index's depth (indices have none)."""
    segment = SEGMENTS.get(fytoken[:4])
    if segment is None:
        raise ValueError(f"{symbol}: segment {fytoken[:4]} is not streamed")
    if symbol.endswith("-INDEX"):
        if depth:
            raise ValueError(f"{symbol}: an index has no market depth")
        return f"if|{segment}|{INDEX_NAMES.get(symbol) or symbol.partition(':')[2].rsplit('-', 1)[0]}"
    return f"{'dp' if depth else 'sf'}|{segment}|{fytoken[10:]}"


# --- the server's frames -------------------------------------------------------------------------
class _Topic:
    __slots__ = ("name", "kind", "raw", "multiplier", "precision")

    def __init__(self, name: str, multiplier: int, precision: int) -> None:
        self.name, self.kind = name, name[:2]
        self.raw: dict[str, int] = {}
        self.multiplier, self.precision = multiplier, precision


class HsmDecoder:
    """The server's frames of one connection: topic ids are the connection's, learned from
    snapshots; a packet of a topic not seen in a snapshot is skipped."""

    def __init__(self) -> None:
        self._topics: dict[int, _Topic] = {}
        self._ack_every = 0
        self._unacknowledged = 0

    def decode(self, frame: bytes) -> list[Reply | Ack | Feed]:
        try:
            if len(frame) < 3:
                raise Malformed("short frame")
            kind = frame[2]
            if kind == DATA:
                return self._data(frame)
            if kind in (AUTH, SUBSCRIBE, UNSUBSCRIBE, MODE, 7, 8):
                return [self._reply(kind, frame)]
            if kind == CUSTOM:
                return [self._custom(frame)]
            return []  # a type the SDK ignores too (11: the ping's)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise Malformed(f"type {frame[2] if len(frame) > 2 else '?'}: {exc}") from None

    def _reply(self, kind: int, frame: bytes) -> Reply:
        (length,) = struct.unpack_from(">H", frame, 5)
        ok = frame[7:7 + length][:1] == b"K"
        if kind == AUTH and ok:
            offset = 7 + length + 3
            (self._ack_every,) = struct.unpack_from(">I", frame, offset)
            self._unacknowledged = 0
            return Reply(kind, ok, ack_every=self._ack_every)
        return Reply(kind, ok)

    @staticmethod
    def _custom(frame: bytes) -> Reply:
        values: dict[int, bytes] = {}
        offset = 4
        for _ in range(frame[3]):
            field_id, length = struct.unpack_from(">BH", frame, offset)
            values[field_id] = frame[offset + 3: offset + 3 + length]
            offset += 3 + length
        code = struct.unpack(">i", values[1])[0] if len(values.get(1, b"")) == 4 else 0
        request = values[3][0] if len(values.get(3, b"")) == 1 else 0
        return Reply(request, False, f"{code}: {values.get(2, b'').decode('utf-8', errors='replace')}")

    def _data(self, frame: bytes) -> list[Reply | Ack | Feed]:
        out: list[Reply | Ack | Feed] = []
        (number, count) = struct.unpack_from(">IH", frame, 3)
        offset = 9
        for _ in range(count):
            packet, offset = frame[offset], offset + 1
            (topic_id,) = struct.unpack_from(">H", frame, offset)
            offset += 2
            if packet == SNAPSHOT:
                feed, offset = self._snapshot(topic_id, frame, offset)
            elif packet == UPDATE:
                feed, offset = self._update(topic_id, frame, offset)
            elif packet == LITE:
                feed, offset = self._lite(topic_id, frame, offset)
            else:
                raise Malformed(f"packet type {packet}")
            if feed is not None:
                out.append(feed)
        if self._ack_every > 0:
            self._unacknowledged += 1
            if self._unacknowledged == self._ack_every:
                self._unacknowledged = 0
                out.append(Ack(number))
        return out

    def _snapshot(self, topic_id: int, frame: bytes, offset: int) -> tuple[Feed | None, int]:
        name_length = frame[offset]
        name = frame[offset + 1: offset + 1 + name_length].decode()
        offset += 1 + name_length
        values, offset = _values(frame, offset)
        multiplier, precision = struct.unpack_from(">HB", frame, offset + 2)
        offset += 5
        for _ in range(3):  # exchange, exchange token, symbol: the connector names the symbol itself
            offset += 1 + frame[offset]
        if name[:2] not in FIELDS:
            return None, offset
        state = self._topics[topic_id] = _Topic(name, multiplier, precision)
        fields = FIELDS[state.kind]
        state.raw = {fields[i]: v for i, v in enumerate(values) if i < len(fields) and v != ABSENT}
        return self._feed(state, snapshot=True), offset

    def _update(self, topic_id: int, frame: bytes, offset: int) -> tuple[Feed | None, int]:
        values, offset = _values(frame, offset)
        state = self._topics.get(topic_id)
        if state is None:
            return None, offset
        fields, changed = FIELDS[state.kind], False
        for i, value in enumerate(values):
            if i < len(fields) and value != ABSENT and state.raw.get(fields[i]) != value:
                state.raw[fields[i]] = value
                changed = True
        return (self._feed(state, snapshot=False) if changed else None), offset

    def _lite(self, topic_id: int, frame: bytes, offset: int) -> tuple[Feed | None, int]:
        (value,) = struct.unpack_from(">i", frame, offset)
        offset += 4
        state = self._topics.get(topic_id)
        if state is None or state.kind == "dp" or value == ABSENT or state.raw.get("ltp") == value:
            return None, offset
        state.raw["ltp"] = value
        return self._feed(state, snapshot=False), offset

    @staticmethod
    def _feed(state: _Topic, *, snapshot: bool) -> Feed | None:
        if state.multiplier == 0:
            return None  # no price can be read
        scale = Decimal(10) ** state.precision * state.multiplier
        prices = PRICES[state.kind]
        values = {k: Decimal(v) / scale if k in prices else v for k, v in state.raw.items()}
        return Feed(state.name, state.kind, values, snapshot)


def _values(frame: bytes, offset: int) -> tuple[tuple[int, ...], int]:
    count = frame[offset]
    values = struct.unpack_from(f">{count}i", frame, offset + 1)
    return values, offset + 1 + 4 * count

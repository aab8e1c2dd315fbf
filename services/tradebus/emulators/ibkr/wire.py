"""The TWS API socket protocol's framing (IBKR TWS API docs, "Architecture: the EClient and
EReader"; the same framing every open-source TWS client implements).

- The client opens with the 4 bytes `API\\0`, then one length-prefixed message holding the
  range of protocol versions it speaks, "v157..178" (and optional connect options after a
  space). The server answers one message of two fields: the version it chose and its
  connection time ("20240120 12:00:00 EST").
- Every message after that is a 4-byte big-endian length and then the message's fields,
  each a string ended by a NUL byte. The first field is the message id; numbers are
  decimal text, booleans "1"/"0", unset values empty.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from collections.abc import Iterable
from decimal import Decimal

HANDSHAKE_PREFIX = b"API\0"
MAX_MESSAGE = 16 * 1024 * 1024  # a length beyond this is a broken stream, not a message
# The server version this emulator speaks: the one of the recorded TWS answers it is checked
# against (tests/venues/ibkr/corpus: openOrder at this version's layout, no faProfile removal,
# no advanced-reject JSON in errors). Any client whose range includes it can connect.
SERVER_VERSION = 164
UNSET_INTEGER = 2**31 - 1  # "2147483647": an integer TWS leaves unset
UNSET_DOUBLE = "1.7976931348623157E308"  # Double.MAX_VALUE as TWS prints it: a double left unset


class In(enum.IntEnum):
    """Request message ids (client to TWS)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DETAILS = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    REQ_REAL_TIME_BARS = 50
    CANCEL_REAL_TIME_BARS = 51
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_COMPLETED_ORDERS = 99


class Out(enum.IntEnum):
    """Answer message ids (TWS to client)."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MARKET_DEPTH = 12
    MARKET_DEPTH_L2 = 13
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    CURRENT_TIME = 49
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    TICK_REQ_PARAMS = 81
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


Field = str | int | Decimal | bool | None


def text(value: Field) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def frame(fields: Iterable[Field]) -> bytes:
    payload = b"".join(text(field).encode() + b"\0" for field in fields)
    return struct.pack(">I", len(payload)) + payload


def fields_of(payload: bytes) -> list[str]:
    """A message's fields (the payload ends with the NUL of its last field)."""
    return payload.decode(errors="replace").split("\0")[:-1]


async def read_message(reader: asyncio.StreamReader) -> list[str]:
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    if length > MAX_MESSAGE:
        raise ConnectionError(f"message of {length} bytes")
    return fields_of(await reader.readexactly(length))


async def read_handshake(reader: asyncio.StreamReader) -> tuple[int, int]:
    """The client's version range; ConnectionError when it does not open with `API\\0`."""
    if await reader.readexactly(len(HANDSHAKE_PREFIX)) != HANDSHAKE_PREFIX:
        raise ConnectionError("not a TWS API client")
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    offer = (await reader.readexactly(length)).decode(errors="replace").split(" ")[0]
    low, _, high = offer.removeprefix("v").partition("..")
    return int(low), int(high or low)

"""Trading states (the kill switch) in the KV bucket `tradebus_risk`.

Key `fleet` holds the fleet-wide state, `account.<name>` an account's. Each value is the
`TradingStateChanged` event that set it, so readers see who changed it, when and why. The
state lives in the bucket, not in the risk process: it survives restarts, and `tradebus
halt` works even while risk is down (risk reads the bucket when it starts and watches it).
"""

from __future__ import annotations

import time

import msgspec
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.events import TradingStateChanged
from tradebus.schemas.values import TradingState
from tradebus.shared.pipeline import MSG_ID

FLEET_KEY = "fleet"
ACCOUNT_KEY_PREFIX = "account."
_decoder = msgspec.json.Decoder(TradingStateChanged)


def state_key(account: str | None) -> str:
    return FLEET_KEY if account is None else f"{ACCOUNT_KEY_PREFIX}{account}"


def check_key(key: str) -> None:
    """Raise ValueError unless `key` is one `state_key` makes."""
    if key != FLEET_KEY and not (key.startswith(ACCOUNT_KEY_PREFIX) and len(key) > len(ACCOUNT_KEY_PREFIX)):
        raise ValueError(f"not a trading-state key: {key!r}")


def decode_state(value: bytes) -> TradingStateChanged:
    return _decoder.decode(value)


async def set_trading_state(
    js: JetStreamContext, bucket: KeyValue, *, account: str | None, state: TradingState, reason: str, changed_by: str
) -> TradingStateChanged:
    """Store the new state, then publish the change to the event stream (for the audit trail)."""
    now = time.time_ns()
    change = TradingStateChanged(
        event_id=f"state.{state_key(account)}.{now}", account=account, state=state, reason=reason,
        changed_by=changed_by, ts_event=now,
    )
    await bucket.put(state_key(account), encode(change))
    await js.publish(subjects.RISK_EVENTS, encode(change), headers={MSG_ID: change.event_id})
    return change

"""Settings every connector shares, whatever its venue (the `[connector]` section; env
`TRADEBUS_CONNECTOR__<KEY>`)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class ConnectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Seconds a market-data subscriber's interest lasts without renewal; clients renew every
    # third of it. Short: a crashed client's streams stop sooner; long: fewer renewals.
    subscription_lease: Annotated[float, msgspec.Meta(ge=0.1, le=86_400)] = 60.0
    # Seconds a cancel that arrived before its place is held for it (heldcancels.py); then
    # it is answered `unknown_order`. Commands keep their order through restarts, so only a
    # client's own race puts a cancel first; a short hold answers a cancel for an order that
    # never existed while its sender is still waiting (the CLI waits 10 s).
    cancel_hold: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0

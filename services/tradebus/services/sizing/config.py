"""Settings of the sizing service (the `[sizing]` section; env `TRADEBUS_SIZING__<KEY>`)."""

from __future__ import annotations

import msgspec


class SizingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # seconds an instrument definition is used before the connector is asked again: lot sizes
    # and minimums change rarely, and a sizing burst should not become a burst of requests
    instruments_ttl: float = 60.0
    query_timeout: float = 2.0  # seconds the order manager and a connector have to answer

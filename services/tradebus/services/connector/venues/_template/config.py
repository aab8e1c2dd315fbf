"""Settings of the venue: its `[venues.<venue>]` table (env TRADEBUS_VENUES__<VENUE>__<KEY>).

Credentials follow the `<VENUE>_API_KEY` / `<VENUE>_API_SECRET` convention (environment or
secrets file: connector/credentials.py) unless given here. Keep the fields the venue needs;
an unknown key is refused when the connector starts, with where it came from.
"""

from __future__ import annotations

import msgspec

from tradebus.services.connector.remote import RemoteSettings
from tradebus.shared.config import Secret


class TemplateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "main"  # the one venue account this connector process trades
    api_key: Secret | None = None
    api_secret: Secret | None = None
    # Where the venue's APIs are; an emulator's or a proxy's address overrides them (what
    # its emulator's `connector_config` returns). None: the venue's production endpoints.
    rest_url: str | None = None
    ws_url: str | None = None
    symbols: list[str] = []  # unified symbols it lists and trades; empty: every instrument the venue lists
    subscribe: list[str] = []  # streams published from start ("*": every listed symbol)
    resilience: RemoteSettings = msgspec.field(default_factory=RemoteSettings)

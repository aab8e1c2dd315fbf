"""The emulated venues of `tradebus up --emulate`: one emulator per venue inside `up`, and
the settings that point each venue's connector at its emulator.

The services get a generated settings file in the run directory: the user's settings plus
one `[venues.<venue>]` table per emulated venue, and those venues added to the venues risk
accepts. The demo credentials, fresh at every start, go only into the environment of that
venue's connector (<VENUE>_API_KEY / <VENUE>_API_SECRET), never into a file or a log.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradebus.services.connector.venuespecs import DEFAULT_VENUE, emulated_venues, venue_spec

from . import tomlfile

if TYPE_CHECKING:  # aiohttp (the emulators extra) is loaded only when a venue is emulated
    from tradebus.emulators.server import Emulator

SETTINGS_FILE = "emulated-settings.toml"
EMULATED_ACCOUNT = "demo"  # the paper venue's account too: one `--account` for every demo venue


def missing_dependency(venue: str, exc: ImportError) -> str:
    """The extra to install: the emulators' (aiohttp) or the one the venue's spec names."""
    package = (exc.name or "a package").split(".")[0]
    extra = "emulators" if package == "aiohttp" else venue_spec(venue).extra or package
    return f"tradebus: {venue} needs the Python package {package!r}: pip install 'tradebus[{extra}]'"


class EmulatedVenues:
    def __init__(self, user_config: str | None) -> None:
        self.user_config = user_config
        self.emulators: dict[str, Emulator] = {}
        self.credential_env: dict[str, dict[str, str]] = {}  # venue -> its connector's credential variables

    def create(self, venues: list[str]) -> str | None:
        """Build an emulator per venue that is not embedded (simulated by its own connector);
        the reason to refuse, if any."""
        try:
            remote = [venue for venue in venues if not venue_spec(venue).embedded]
        except ValueError as exc:
            return f"tradebus: {exc}"
        if not remote:
            return f"tradebus: --emulate needs a --venue to emulate ({', '.join(emulated_venues())})"
        for venue in remote:
            api_key = f"demo-{secrets.token_hex(6)}"
            try:
                emulator_type = venue_spec(venue).emulator_class()
                api_secret = emulator_type.issue_secret()
                self.emulators[venue] = emulator_type.create(credentials={api_key: api_secret})
            except ValueError as exc:
                return f"tradebus: {exc}"
            except ImportError as exc:
                return missing_dependency(venue, exc)
            if venue_spec(venue).needs_credentials:
                prefix, secret_name = venue.upper(), venue_spec(venue).secret_name
                self.credential_env[venue] = {f"{prefix}_API_KEY": api_key, f"{prefix}_{secret_name}": api_secret}
        return None

    async def start(self, run_dir: Path) -> str:
        """Serve every emulator; return the path of the settings file for the services."""
        for emulator in self.emulators.values():
            await emulator.start()
        path = run_dir / SETTINGS_FILE
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"# Written by `tradebus up --emulate`; rewritten at every start.\n{tomlfile.dumps(self.settings())}")
        return str(path)

    def settings(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.user_config:
            with open(self.user_config, "rb") as file:
                document = tomllib.load(file)
        venues = document.setdefault("venues", {})
        for venue, emulator in self.emulators.items():
            table = emulator.connector_config(account=EMULATED_ACCOUNT, api_key="", api_secret="")
            # credentials reach the connector through its environment only, never this file
            credentials = ("api_key", venue_spec(venue).secret_name.lower())
            venues[venue] = {key: value for key, value in table.items() if key not in credentials}
        risk = document.setdefault("risk", {})
        risk["venues"] = sorted({*risk.get("venues", [DEFAULT_VENUE]), *self.emulators})
        return document

    def urls(self) -> dict[str, str]:
        return {venue: emulator.url for venue, emulator in self.emulators.items()}

    async def stop(self) -> None:
        for emulator in self.emulators.values():
            if emulator.url:
                await emulator.stop()

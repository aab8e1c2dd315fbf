"""The session of a venue whose access token lasts a day (Zerodha, Fyers): a state machine
the connector runs and shows on the bus.

    logged_in --(documented expiry near)--> expiring --(venue refuses the token)--> expired
    logged_in / expiring --(venue refuses the token)--> expired
    any --(a new token in the secrets file)--> reauthenticated --(venue takes it, reconciled)--> logged_in
    reauthenticated --(venue refuses the new token too)--> expired

While expired, nothing reaches the venue: commands are refused at once with
`session_expired` (cancels too: they could not reach it either), the connector's request
path refuses before sending (remote.py), streams wait for the next session, and the venue is
asked again at most once per `expired_probe_interval` (with the same token: a venue may have
refused it for a moment). A new token is looked for in the secrets file every
`token_check_interval` seconds (a stat; read only when the file changed): a running process
cannot see a new environment, so a token given in the environment or the settings is never
replaced (the status says so, with what to do).

What differs per venue (when its tokens expire, the login command) is its SessionRules, in
its own folder; which venue answers mean an expired token is its code table's (codes.py
Outcome.SESSION). Tokens never leave this module's callers other than to the venue's SDK:
logs and statuses name the variable, never the value.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import msgspec

from tradebus.schemas.control import VenueSession
from tradebus.schemas.values import ServiceState, SessionState
from tradebus.shared.config import ConfigError, Secret, load_secrets_file

from .credentials import SECRETS_FILE_VARIABLE, secret_variable
from .errors import SessionExpired, VenueError

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int]  # (inode, size, mtime ns): a rewrite or a replacing rename changes it


class SessionSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`[venues.<venue>.session]` of a venue with daily access tokens."""

    token_check_interval: float = 5.0  # seconds between looks at the secrets file for a new token
    expired_probe_interval: float = 900.0  # while expired and no new token: one request with the old one at most this often
    expiring_warning: float = 1800.0  # seconds before the documented expiry from which the session shows as expiring


class SessionVenue(Protocol):
    """What a venue connector with daily tokens does for its session."""

    def use_token(self, token: str) -> None:
        """Sign every request and stream from now on with `token`."""

    async def check_session(self) -> None:
        """One cheap request that proves the token (the taxonomy's errors if not)."""


@dataclass(frozen=True)
class SessionRules:
    """What a venue documents about its sessions (venues/<venue>/session.py)."""

    # When a token stops working: from the token itself, or from when this process first
    # saw it (ns); None where the venue documents no time.
    expires_at: Callable[[str, int], int | None]
    login: str  # the command an operator runs for a new token


def service_view(session: VenueSession) -> tuple[ServiceState, str]:
    """The connector's state and status detail for its session: plain words, with what to do."""
    text = "; ".join(part for part in (f"session {session.state.value}", session.detail, session.action) if part)
    ready = session.state in (SessionState.LOGGED_IN, SessionState.EXPIRING)
    return (ServiceState.READY if ready else ServiceState.DEGRADED), ("" if session.state is SessionState.LOGGED_IN else text)


class TokenSession:
    """One venue account's session. `report` is called with every change."""

    def __init__(self, connector: SessionVenue, *, venue: str, account: str, token: Secret, source: Path | None,
                 rules: SessionRules, settings: SessionSettings, report: Callable[[VenueSession], None]) -> None:
        self.connector = connector
        self.venue, self.account, self.rules, self.settings = venue, account, rules, settings
        self.source = source  # the secrets file the token comes from; None: settings or environment
        self.variable = secret_variable(venue)
        self.state = SessionState.LOGGED_IN
        self.since = time.time_ns()
        self.detail = ""
        self._report = report
        self._token = token  # the one in use, or the last one the venue refused: never tried twice
        self.expires_at = rules.expires_at(token.reveal(), self.since)
        self._expiry_probed = False
        self._last_probe = 0.0
        self._usable = asyncio.Event()
        self._usable.set()
        self._stamp = _stamp(source)

    # --- what the connector asks ------------------------------------------------------------
    @property
    def token(self) -> str:
        return self._token.reveal()

    @property
    def blocked(self) -> bool:
        """Expired: nothing may be sent to the venue."""
        return self.state is SessionState.EXPIRED

    async def usable(self) -> None:
        """Return once the session is logged in (at once if it is)."""
        await self._usable.wait()

    def refusal(self) -> SessionExpired:
        return SessionExpired(f"the {self.venue} session expired: {self._action()}")

    def status(self) -> VenueSession:
        return VenueSession(venue=self.venue, account=self.account, state=self.state, since=self.since,
                            expires_at=self.expires_at, detail=self.detail[:1024], action=self._action()[:1024])

    def expired(self, message: str) -> None:
        """The venue refused the token (its code table says: an expired session)."""
        self._last_probe = time.monotonic()  # this refusal is the latest look: the next one is an interval away
        # while a new token is tried, its own outcome decides (a refusal of it arrives here too)
        if self.state not in (SessionState.EXPIRED, SessionState.REAUTHENTICATED):
            self._change(SessionState.EXPIRED, f"{self.venue} refused the access token ({message})")

    # --- the watcher --------------------------------------------------------------------------
    async def run(self, resume: Callable[[], Awaitable[None]]) -> None:
        """Watch the secrets file and the documented expiry for the connector's lifetime.
        `resume()`: connect and reconcile with the token in use (the taxonomy's errors if not)."""
        while True:
            await asyncio.sleep(self.settings.token_check_interval)
            new = self._new_token()
            if new is not None:
                await self._take(new, resume)
            elif self.blocked:
                if time.monotonic() - self._last_probe >= self.settings.expired_probe_interval:
                    await self._probe(resume)
            else:
                await self._tend_expiry()

    async def _tend_expiry(self) -> None:
        """Expiring near the documented time; at it, one request says whether it expired."""
        if self.expires_at is None or self.state is SessionState.REAUTHENTICATED:
            return
        now = time.time_ns()
        if self.state is SessionState.LOGGED_IN and now >= self.expires_at - int(self.settings.expiring_warning * 1e9):
            self._change(SessionState.EXPIRING, f"the access token expires at {_when(self.expires_at)}")
        if now >= self.expires_at and not self._expiry_probed:
            self._expiry_probed = True
            try:
                await self.connector.check_session()
            except SessionExpired as exc:
                self.expired(exc.message)
            except VenueError:
                pass  # unreachable: the request path reports what it meets

    async def _probe(self, resume: Callable[[], Awaitable[None]]) -> None:
        self._last_probe = time.monotonic()
        try:
            await self.connector.check_session()
        except VenueError:
            return  # still refused (or unreachable): next look an interval later
        log.info("the venue takes the access token again", extra={"venue": self.venue})
        await self._take(self._token, resume)

    async def _take(self, token: Secret, resume: Callable[[], Awaitable[None]]) -> None:
        self._change(SessionState.REAUTHENTICATED, "a new access token is being tried: logging in and reconciling")
        self.connector.use_token(token.reveal())
        try:
            await resume()
        except SessionExpired as exc:
            self._token = token
            self._change(SessionState.EXPIRED, f"{self.venue} refused the new access token too ({exc.message})")
            return
        except VenueError as exc:  # unreachable or busy: the new token is tried again at the next look
            self._change(SessionState.REAUTHENTICATED, f"the venue could not be reached to log in: {exc.message}")
            self._stamp = None
            return
        self._token = token
        self.expires_at = self.rules.expires_at(token.reveal(), time.time_ns())
        self._expiry_probed = False
        self._change(SessionState.LOGGED_IN, "")

    def _new_token(self) -> Secret | None:
        """The secrets file's token, when the file changed and holds one not tried yet."""
        if self.source is None:
            return None
        stamp = _stamp(self.source)
        if stamp == self._stamp:
            return None
        try:
            token = load_secrets_file(self.source).get(self.variable)
        except ConfigError as exc:  # e.g. caught half-written: looked at again next time
            log.warning("secrets file unreadable; looking again", extra={"error": str(exc)})
            return None
        self._stamp = stamp
        return None if token is None or token.reveal() == self._token.reveal() else token

    def _change(self, state: SessionState, detail: str) -> None:
        self.state, self.detail, self.since = state, detail, time.time_ns()
        if state in (SessionState.LOGGED_IN, SessionState.EXPIRING):
            self._usable.set()
        else:
            self._usable.clear()
        if state is SessionState.EXPIRED:  # an operator must act
            log.error("venue session expired: the venue refused the credentials (the day's access token)",
                      extra={"venue": self.venue, "detail": detail, "action": self._action()})
        else:
            log.info("venue session %s", state.value, extra={"venue": self.venue, "detail": detail})
        self._report(self.status())

    def _action(self) -> str:
        if self.state in (SessionState.LOGGED_IN, SessionState.REAUTHENTICATED):
            return ""
        if self.source is None:
            where = (f"the token comes from the settings or the environment, which a running connector cannot "
                     f"read again: put {self.variable} in the secrets file named by {SECRETS_FILE_VARIABLE} "
                     f"(then it is picked up without a restart) or restart the connector with the new token")
        else:
            where = f"the connector picks the new {self.variable} up from {self.source} without a restart"
        now = "log in again before then" if self.state is SessionState.EXPIRING else "orders are refused until you log in"
        return f"{now}: {self.rules.login}; {where}"


def _stamp(path: Path | None) -> Stamp | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC")

"""The connector side of a venue session with daily access tokens (session.py): what
RemoteVenueConnector does when its venue sets `session`. A mixin, like placement.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tradebus.schemas.control import VenueSession
from tradebus.shared.config import Secret

from .base import ReportSession, ReportStatus
from .credentials import secret_from_file
from .errors import AuthFailed, SessionExpired
from .session import SessionRules, SessionSettings, SessionVenue, TokenSession, service_view


class SessionHost:
    # Provided by RemoteVenueConnector.
    venue: str
    account: str
    report_status: ReportStatus
    report_session: ReportSession
    session: TokenSession | None
    _ready: Any  # asyncio.Event: connected and reconciled
    _call: Callable[..., Awaitable[Any]]
    connect: Callable[[], Awaitable[None]]
    _reconcile_all: Callable[..., Awaitable[None]]
    _read_account: Callable[..., Awaitable[None]]
    _subscribe_configured: Callable[[], Awaitable[None]]
    _auth_failed: Callable[[AuthFailed], None]

    def _start_session(self, venue_side: SessionVenue, token: Secret, *, given: Secret | None, rules: SessionRules,
                       settings: SessionSettings) -> None:
        """Run the connector's session: `token` as resolved, `given` the settings' own (a
        token from the settings or the environment cannot be replaced while running)."""
        source: Path | None = secret_from_file(self.venue, given=given)
        self.session = TokenSession(venue_side, venue=self.venue, account=self.account, token=token, source=source,
                                    rules=rules, settings=settings, report=self._session_changed)

    def _session_gate(self) -> None:
        """Before any request to the venue: nothing goes to a venue that refuses the token."""
        if self.session is not None and self.session.blocked:
            raise self.session.refusal()

    async def _resume_session(self) -> None:
        """A new token was taken: prove it, reconcile, resume the streams. The taxonomy's
        errors propagate: the session decides what they mean."""
        await self._call(self.connect)
        await self._reconcile_all(history=True)
        await self._read_account(snapshot=True)
        self._ready.set()
        await self._subscribe_configured()

    def _session_changed(self, session: VenueSession) -> None:
        """On the bus as the connector's status, with the session itself."""
        self.report_session(session)
        state, detail = service_view(session)
        self.report_status(state, detail)

    async def _session_over(self, exc: Exception) -> bool:
        """After a stream ended with `exc`: True once a session that expired is back (the new
        one reconciled), False when the session is not what stopped the stream."""
        if isinstance(exc, SessionExpired):
            self._auth_failed(exc)
        if self.session is None or not self.session.blocked:
            return False
        await self.session.usable()
        return True

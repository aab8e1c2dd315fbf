"""Getting onto the bus as an identity, and being told plainly when the bus says no.

Every process opens its NATS connection through `connect_bus`: user and password from a
credentials file, requests answered on the identity's own inboxes (`_INBOX.<user>.>`, the
only ones it may subscribe to), TLS from the files it is given. Two kinds of refusal are
reported as what they are, instead of as a timeout or an endless reconnect loop:

- `BusRefused` at connect: a wrong user or password, a bus certificate not signed by the
  given CA, a bus that wants a client certificate. Trying again cannot help.
- `PermissionRefused` for an operation: the server answers a publish or subscription the
  identity may not make with `-ERR 'Permissions Violation ...'`, which nats-py only hands to
  its error callback; a request (JetStream publishes are requests) would wait for its
  timeout and fail as "nats: timeout". `BusConnection` matches each violation to the
  requests waiting on that subject and fails them at once with the refusal.

No message names a password: URLs are shown with their user info masked (`public_url`).

Every connection pings its server every PING_INTERVAL seconds and gives it up after
MAX_OUTSTANDING_PINGS unanswered pings, then reconnects (to another node of a cluster):
nats-py's default (two minutes, two pings) would leave a service talking to a frozen or
partitioned-off server for four minutes, its heartbeats and commands stuck. Pings alone do
not do it for a busy publisher cut off by a partition: the silent peer lets its socket fill,
nats-py's writer then waits on it without end and the pings queue behind it, never sent,
never counted as missing. So the kernel is told to break the connection once sent data has
gone unacknowledged for UNACKNOWLEDGED_LIMIT seconds (TCP_USER_TIMEOUT, Linux), on every
(re)connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar
from urllib.parse import urlsplit

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from .credentials import Credentials, connect_options, inbox_prefix
from .logs import redact

log = logging.getLogger(__name__)

PING_INTERVAL = 2  # seconds
MAX_OUTSTANDING_PINGS = 3
UNACKNOWLEDGED_LIMIT = 10.0  # seconds

T = TypeVar("T")
ErrorCallback = Callable[[Exception], Awaitable[None]]

DEFAULT_INBOX_PREFIX = "_INBOX"
# nats-py lower-cases the server's error text: 'permissions violation for publish to "x"'.
_VIOLATION = re.compile(r'permissions violation for (publish to|subscription to|publish with reply of) "([^"]*)"')
_ACTIONS = {"publish to": "publish to", "subscription to": "subscribe to",
            "publish with reply of": "ask for replies on"}
_CLOSE_WAIT = 2.0  # seconds given to a refused connection attempt to wind down


class BusRefused(Exception):
    """The bus would not let this process connect (authentication or TLS); the message says
    why and what to change, and holds no secret."""


class PermissionRefused(Exception):
    """The bus refused an identity permission to publish or subscribe to a subject."""

    def __init__(self, user: str, action: str, subject: str) -> None:
        self.user = user
        self.action = action
        self.subject = subject
        who = f"user {user!r}" if user else "this connection (no user)"
        super().__init__(f"the bus refused {who} permission to {action} {subject}")


def public_url(url: str) -> str:
    """A bus URL (or comma-separated list) fit to print: user info becomes `***`."""
    return ",".join(_public_server(part.strip()) for part in url.split(","))


def _public_server(server: str) -> str:
    if "@" not in server:
        return server
    scheme, sep, rest = server.rpartition("://")
    return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}"


class _Waiter:
    """A task awaiting an operation that a refusal of one of `subjects` (or, with
    `replies`, of its inboxes) ends: the refusal cancels the task and takes the
    operation's place."""

    def __init__(self, subjects: Collection[str], replies: bool) -> None:
        self.subjects = {subject.lower(): subject for subject in subjects}
        self.replies = replies
        self.task = asyncio.current_task()
        self.refusal: PermissionRefused | None = None

    def refuse(self, refusal: PermissionRefused) -> bool:
        if self.refusal is not None or self.task is None:
            return False
        self.refusal = refusal
        self.task.cancel()
        return True


class Refusals:
    """The permission violations the server reports on one connection, matched to the
    operations waiting on them."""

    def __init__(self, user: str, inbox: str) -> None:
        self.user = user
        self.inbox = inbox
        self._waiters: set[_Waiter] = set()

    def report(self, error: Exception) -> tuple[PermissionRefused | None, bool]:
        """The refusal `error` reports (None if it is no permission violation), and whether
        an operation waiting on it was failed with it."""
        match = _VIOLATION.search(str(error))
        if match is None:
            return None, False
        kind, reported = match.groups()
        own_inbox = reported.startswith(f"{self.inbox.lower()}.")
        claimed = False
        for waiter in list(self._waiters):
            subject = waiter.subjects.get(reported) if kind == "publish to" else None
            if subject is None and own_inbox and waiter.replies and kind != "publish to":
                subject = reported
            if subject is not None:
                claimed = waiter.refuse(PermissionRefused(self.user, _ACTIONS[kind], subject)) or claimed
        return PermissionRefused(self.user, _ACTIONS[kind], reported), claimed

    async def guard(self, operation: Awaitable[T], *, publish: Collection[str], replies: bool) -> T:
        """Await `operation`; PermissionRefused as soon as the server refuses a publish to one
        of `publish`, or (with `replies`) a subscription to this connection's inboxes. In the
        caller's task (no task per request: this is every JetStream publish's path)."""
        waiter = _Waiter(publish, replies)
        self._waiters.add(waiter)
        try:
            return await operation
        except asyncio.CancelledError:
            # Refused, and not also cancelled by someone else: the refusal is the outcome.
            if waiter.refusal is None or waiter.task is None or waiter.task.uncancel() > 0:
                raise
            raise waiter.refusal from None
        finally:
            self._waiters.discard(waiter)


class BusConnection(NATS):
    """A nats-py client whose requests (core and JetStream) fail with PermissionRefused when
    the server refuses them, instead of waiting for their timeout."""

    def __init__(self, user: str = "", inbox: str = DEFAULT_INBOX_PREFIX) -> None:
        super().__init__()
        self.refusals = Refusals(user, inbox)

    async def request(self, subject: str, *args: Any, **kwargs: Any) -> Msg:
        return await self.refusals.guard(super().request(subject, *args, **kwargs), publish=(subject,), replies=True)


async def connect_bus(url: str, *, name: str, credentials: Credentials | None = None,
                      tls: ssl.SSLContext | None = None, error_cb: ErrorCallback | None = None,
                      **options: Any) -> BusConnection:
    """Connect to the bus at `url` (comma-separated for a cluster) as `credentials`' user.
    `options` go to nats-py's connect. BusRefused if the bus turns the connection down for
    good at the first attempt; other failures are nats-py's (NoServersError, OSError).
    `error_cb` gets the connection's later errors, with permission violations no waiting
    request was failed with as PermissionRefused."""
    servers = [part.strip() for part in url.split(",")]
    for server in servers:  # a password written into the URL is masked in every log line too
        if password := urlsplit(server).password:
            redact.register(password)
    user = credentials.user if credentials is not None else (urlsplit(servers[0]).username or "")
    # A user named in the URL (how docker-compose passes each service its own) gets the same
    # private inboxes as one from a credentials file (unless told otherwise): a secured bus
    # lets it read no other.
    inbox = credentials.inbox_prefix if credentials is not None else options.pop(
        "inbox_prefix", inbox_prefix(user) if user else DEFAULT_INBOX_PREFIX)
    nc = BusConnection(user, inbox)
    refused: asyncio.Future[BusRefused] = asyncio.get_running_loop().create_future()
    connected = False

    async def on_error(error: Exception) -> None:
        if not connected:
            reason = _refusal(error, user)
            if reason is not None:
                if not refused.done():
                    refused.set_result(BusRefused(f"the bus at {public_url(url)} {reason}"))
                return
        refusal, claimed = nc.refusals.report(error)
        if claimed:
            return  # the refused request raises it
        await (error_cb or _log_error)(refusal or error)

    reconnected = options.pop("reconnected_cb", None)

    async def on_reconnected() -> None:
        limit_unacknowledged_sends(nc)
        if reconnected is not None:
            await reconnected()

    options.update(connect_options(credentials), inbox_prefix=inbox, reconnected_cb=on_reconnected)
    options.setdefault("ping_interval", PING_INTERVAL)
    options.setdefault("max_outstanding_pings", MAX_OUTSTANDING_PINGS)
    if tls is not None:
        options["tls"] = tls
    connecting = asyncio.ensure_future(nc.connect(servers, name=name, error_cb=on_error, **options))
    await asyncio.wait((connecting, refused), return_when=asyncio.FIRST_COMPLETED)
    if not refused.done():
        await connecting  # raises what nats-py raised
        connected = True
        limit_unacknowledged_sends(nc)
        return nc
    # nats-py would go on trying (and after a refused TLS handshake can hang): stop it.
    connecting.cancel()
    connecting.add_done_callback(lambda task: task.cancelled() or task.exception())  # retrieved: not logged
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(nc.close()), _CLOSE_WAIT)
    raise refused.result()


def limit_unacknowledged_sends(nc: NATS) -> None:
    """TCP_USER_TIMEOUT on the connection's socket (see the module's doc). nats-py names its
    socket nowhere public: it is its transport's stream writer's."""
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    sock = writer.get_extra_info("socket") if writer is not None else None
    if sock is None or not hasattr(socket, "TCP_USER_TIMEOUT") or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # not Linux, or not TCP (a websocket): pings only
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKNOWLEDGED_LIMIT * 1000))


def _refusal(error: Exception, user: str) -> str | None:
    """Why the bus turned a connection attempt down for good, or None for a failure worth
    retrying (the bus is not up yet, the network broke)."""
    if "authorization violation" in str(error).lower():
        if not user:
            return ("refused the connection: it requires credentials "
                    "(--credentials FILE or TRADEBUS_NATS_CREDENTIALS)")
        return f"refused user {user!r}: authorization violation (wrong user or password?)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (f"presented a TLS certificate this process does not trust ({error.verify_message}): "
                "give the CA that signed it (--tls-ca or TRADEBUS_NATS_TLS_CA)")
    if isinstance(error, ssl.SSLError):
        if "CERTIFICATE_REQUIRED" in (error.reason or ""):
            return ("requires a TLS client certificate: give one "
                    "(--tls-cert and --tls-key, or TRADEBUS_NATS_TLS_CERT and TRADEBUS_NATS_TLS_KEY)")
        return f"refused the TLS handshake ({(error.reason or str(error)).replace('_', ' ').lower()})"
    return None


async def _log_error(error: Exception) -> None:
    if isinstance(error, PermissionRefused):
        log.error("bus permission refused", extra={"error": str(error)})
    else:
        log.warning("bus error", extra={"error": repr(error)})


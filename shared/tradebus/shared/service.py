"""The service base: one lifecycle for every process of the fleet.

start: connect to the bus, serve /metrics /healthz /readyz, answer pings, run the
service's own start-up, then publish heartbeats until SIGTERM/SIGINT.
stop:  mark not ready, let the service finish in-flight work, drain the bus (which
flushes every pending publish), stop the HTTP server.

A background task that dies takes the whole service down with a non-zero exit: a
supervisor (tradebus up, Docker, Kubernetes) restarts it, and durable consumers redeliver
whatever was not acknowledged. Crash-only is simpler and safer than limping on.

Every stop is bounded by `shutdown_grace`, also one requested while the service is still
starting (connecting to a bus that is down, replaying a stream): a step that has not
finished by then is abandoned, logged by name, and the process exits with status 1. A dead
or frozen bus can make any await wait forever (a flush waits for a PONG that never comes),
so no step of a stop is trusted to end by itself. `run_service` adds a last resort for what
the event loop cannot bound (a thread that never returns, a task that swallows its
cancellation): the process is ended with os._exit when the grace period is over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Coroutine
from typing import Annotated, Any, ClassVar

import msgspec

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.values import ServiceState
from tradebus.shared.bus import Bus
from tradebus.shared.busaccess import BusRefused
from tradebus.shared.bustls import TlsFiles
from tradebus.shared.config import EXIT_CONFIG, ConfigError, StartRefused
from tradebus.shared.credentials import Credentials, load_credentials
from tradebus.shared.health import HealthServer, ServiceMetrics
from tradebus.shared.logs import LogLevel
from tradebus.shared.loopwatch import LoopWatch
from tradebus.shared.pipeline import BUS_OUTAGE_GRACE, PUBLISH_TIMEOUT, BusOutage
from tradebus.shared.quarantine import Quarantine
from tradebus.shared.topology import StreamSettings
from tradebus.shared.version import VERSION

log = logging.getLogger(__name__)


EXIT_REFUSED = EXIT_CONFIG
"""Exit code of a process that refused to start because of how it is configured (bad
settings, missing credentials, a store bound to another bus): restarting it cannot help, so
supervisors (`tradebus up`) do not restart it."""


class RuntimeSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings every service has. Environment: TRADEBUS_NATS_URL, TRADEBUS_HTTP_PORT, ..."""

    nats_url: str = "nats://127.0.0.1:4222"
    # the bus identity: a credentials file (see credentials.py); "" = connect without one
    nats_credentials: str = ""
    # TLS to the bus (PEM files): the CA its certificate is checked against (default: the
    # system's), and a client certificate and key for a bus that asks for one (mutual TLS)
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    log_level: LogLevel = LogLevel.INFO
    log_json: bool = True
    http_host: str = "127.0.0.1"  # containers set 0.0.0.0
    http_port: int = 0  # 0 = any free port (several services on one host)
    heartbeat_interval: float = 1.0
    instance: str = ""  # defaults to the service's own choice (venue name, host name)
    shutdown_grace: float = 10.0  # seconds from SIGTERM to exit, whatever still runs then
    # seconds the event loop may be unresponsive before /healthz answers 503
    loop_stall_limit: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # seconds the bus may stay unreachable before the service fails (and is restarted);
    # below the streams' duplicate window, which makes publishing again after a break safe
    bus_outage_grace: Annotated[float, msgspec.Meta(gt=0)] = BUS_OUTAGE_GRACE
    streams: StreamSettings = msgspec.field(default_factory=StreamSettings)

    def bus_identity(self) -> tuple[Credentials | None, TlsFiles]:
        """The credentials and TLS files to connect with; ConfigError for a credentials file
        that is unreadable, readable by others or incomplete."""
        credentials = load_credentials(self.nats_credentials) if self.nats_credentials else None
        return credentials, TlsFiles(ca=self.nats_tls_ca, cert=self.nats_tls_cert, key=self.nats_tls_key)

    def republish_risk(self) -> str:
        """Why publishing again after a bus break may store a message twice here ('' if it
        cannot): the streams de-duplicate only within their duplicate window."""
        if self.bus_outage_grace + PUBLISH_TIMEOUT < self.streams.duplicate_window:
            return ""
        return (f"bus_outage_grace ({self.bus_outage_grace:g}s) plus the publish timeout ({PUBLISH_TIMEOUT:g}s) "
                f"reach [streams] duplicate_window ({self.streams.duplicate_window:g}s): a message published again "
                "after a long bus break may be stored twice; lower bus_outage_grace")


def default_instance() -> str:
    """A subject-safe instance name for this host."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return (host or "local")[:32]


class Service:
    """Subclasses set `name` and implement `start` (and `stop` if they hold resources)."""

    name: ClassVar[str]

    def __init__(self, settings: RuntimeSettings, *, instance: str) -> None:
        self.settings = settings
        self.instance = settings.instance or instance
        self.metrics = ServiceMetrics(self.name)
        self.state = ServiceState.STARTING
        self.detail = ""
        self.started_at = time.time_ns()
        self.stopping = asyncio.Event()
        self.bus: Bus | None = None
        self.health: HealthServer | None = None
        self.quarantine = Quarantine(self.name, self.metrics)
        self.loop_watch = LoopWatch(self.metrics)
        self.metrics.gauge("tradebus_service_ready", "1 while the service is ready (what /readyz answers 200 to).") \
            .set_function(lambda: float(self.is_ready()))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failure: BaseException | None = None
        self._outage_timer: asyncio.TimerHandle | None = None  # fails the service if the bus stays away

    # --- what subclasses implement -------------------------------------------------------
    async def start(self) -> None:
        """Declare streams, subscribe, spawn workers. Return when ready to serve."""

    async def stop(self) -> None:
        """Finish in-flight work; the bus is still connected here."""

    def counters(self) -> dict[str, int]:
        """Service-specific totals added to every heartbeat."""
        return {}

    # --- helpers for subclasses ----------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run a background task; if it fails, the service stops with an error."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if self._failure is None:
            self._failure = task.exception()
            log.error("background task failed; stopping", exc_info=task.exception(), extra={"task": task.get_name()})
        self.stopping.set()

    def _on_connection(self, up: bool) -> None:
        """A service rides out a bus break (its publishes are published again once the bus is
        back, its consumers ask again); one that lasts `bus_outage_grace` fails it."""
        if up:
            if self._outage_timer is not None:
                self._outage_timer.cancel()
                self._outage_timer = None
        elif self._outage_timer is None and self.state is not ServiceState.STOPPING:
            self._outage_timer = asyncio.get_running_loop().call_later(self.settings.bus_outage_grace, self._outage_over)

    def _outage_over(self) -> None:
        if self.state is ServiceState.STOPPING:  # a stop has its own deadline
            return
        if self._failure is None:
            self._failure = BusOutage(f"the bus has been unreachable for {self.settings.bus_outage_grace:g}s")
            log.error("bus unreachable for longer than bus_outage_grace; stopping",
                      extra={"grace": self.settings.bus_outage_grace})
        self.stopping.set()

    def status(self) -> ServiceStatus:
        return ServiceStatus(
            service=self.name,
            instance=self.instance,
            state=self.state,
            version=VERSION,
            pid=os.getpid(),
            started_at=self.started_at,
            ts_event=time.time_ns(),
            heartbeat_ms=round(self.settings.heartbeat_interval * 1000),
            counters={**self.metrics.totals(), **self.counters()},
            detail=self.detail,
            http_port=self.health.port if self.health is not None else None,
        )

    # --- lifecycle -----------------------------------------------------------------------
    async def serve(self) -> int:
        """Run until asked to stop; return the process exit code."""
        self.health = HealthServer(
            host=self.settings.http_host,
            port=self.settings.http_port,
            registry=self.metrics.registry,
            is_live=self.is_live,
            is_ready=self.is_ready,
        )
        watching = asyncio.create_task(self.loop_watch.run(), name="loop-watch")
        try:
            return await self._serve()
        finally:
            watching.cancel()

    def is_ready(self) -> bool:
        """/readyz and `tradebus_service_ready`: started and connected to the bus."""
        return self.state is ServiceState.READY and self.bus is not None and self.bus.connected

    def is_live(self) -> bool:
        """/healthz: no background task failed, and the event loop is responsive. Called on
        the health server's thread, so it answers while this service's loop is blocked."""
        return self._failure is None and self.loop_watch.lag() <= self.settings.loop_stall_limit

    async def _serve(self) -> int:
        assert self.health is not None
        await self.health.start()
        starting = asyncio.create_task(self._start_up(), name="start-up")
        stop_requested = asyncio.create_task(self.stopping.wait(), name="stop-requested")
        await asyncio.wait((starting, stop_requested), return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and not starting.exception():
            heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeats")
            await stop_requested
            heartbeat.cancel()
        deadline = ShutdownDeadline(self.settings.shutdown_grace)
        if not starting.done():
            log.warning("stop requested during start-up")
            starting.cancel()
            await deadline.run("start-up", starting)
        elif isinstance(starting.exception(), StartRefused):
            log.error("start-up refused: %s", starting.exception())
            self._failure = starting.exception()
        elif starting.exception() is not None:
            log.error("start-up failed", exc_info=starting.exception())
            self._failure = starting.exception()
        stop_requested.cancel()
        await self._shutdown(deadline)
        if deadline.abandoned:
            log.error("stopped without finishing, at the end of the grace period",
                      extra={"abandoned": deadline.abandoned, "grace": self.settings.shutdown_grace})
            return 1
        if self._failure is None:
            return 0
        return EXIT_REFUSED if isinstance(self._failure, StartRefused) else 1

    async def _start_up(self) -> None:
        try:
            credentials, tls = self.settings.bus_identity()
            self.bus = await Bus.connect(self.settings.nats_url, name=f"{self.name}.{self.instance}",
                                         credentials=credentials, tls=tls, outage_grace=self.settings.bus_outage_grace)
        except (ConfigError, BusRefused) as exc:  # a wrong file or identity: restarting cannot help
            raise StartRefused(str(exc)) from None
        self.bus.connection_listeners.append(self._on_connection)
        if risk := self.settings.republish_risk():
            log.warning(risk)
        self.quarantine.bus = self.bus
        await self.bus.nc.subscribe(subjects.PING, cb=self._answer_ping)
        assert self.health is not None
        log.info("starting", extra={"instance": self.instance, "http_port": self.health.port})
        await self.start()
        await self.bus.nc.flush()  # subscriptions are registered at the server before READY
        if not self.stopping.is_set() and self.state is ServiceState.STARTING:  # start may report DEGRADED
            self.state = ServiceState.READY
            log.info("ready")

    def request_stop(self) -> None:
        self.stopping.set()

    async def _shutdown(self, deadline: ShutdownDeadline) -> None:
        """Each step gets what is left of the grace period; one that overruns it is abandoned."""
        self.state = ServiceState.STOPPING
        log.info("stopping")
        assert self.health is not None
        if self.bus is not None:  # else start-up never reached the service's own start
            await deadline.run("status publish", self._publish_status())
            await deadline.run("service stop", self.stop())
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await deadline.run("background tasks", asyncio.gather(*self._tasks, return_exceptions=True))
        self.quarantine.cancel()
        if self.bus is not None:
            await deadline.run("bus drain", self.bus.drain())
        await deadline.run("health server", self.health.stop())
        log.info("stopped")

    async def _heartbeats(self) -> None:
        while True:
            await self._publish_status()
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def _publish_status(self) -> None:
        assert self.bus is not None
        try:
            await self.bus.publish(subjects.status(self.name, self.instance), self.status())
        except Exception as exc:  # a heartbeat is best effort: never let it kill the service
            log.warning("heartbeat not published", extra={"error": repr(exc)})

    async def _answer_ping(self, msg: Any) -> None:
        if msg.reply:
            await msg.respond(encode(self.status()))


class ShutdownDeadline:
    """The grace period of one stop, shared by its steps in turn."""

    def __init__(self, grace: float) -> None:
        # A little of the grace is kept for the interpreter's own exit, so that the process
        # is gone within `grace` of the stop request.
        self.at = time.monotonic() + grace - min(1.0, grace * 0.2)
        self.abandoned: list[str] = []

    async def run(self, step: str, awaitable: Awaitable[Any]) -> None:
        """Await `awaitable` until the deadline. A failure is logged (the stop goes on); a
        step still running at the deadline is cancelled and left behind, never awaited
        again: nats-py's drain, for one, swallows its cancellation and goes on flushing."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait((task,), timeout=max(0.0, self.at - time.monotonic()))
        if not done:
            task.cancel()
            self.abandoned.append(step)
            log.error("shutdown step abandoned: the grace period is over", extra={"step": step})
        elif not task.cancelled() and task.exception() is not None:
            log.error("shutdown step failed", exc_info=task.exception(), extra={"step": step})


def run_service(service: Service) -> int:
    """Run a service in this process with SIGTERM/SIGINT wired to a clean drain, and the
    process ended anyway once the grace period after the stop request is over."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.request_stop)
        arm = asyncio.create_task(_exit_when_overdue(service), name="exit-when-overdue")
        try:
            return await service.serve()
        finally:
            arm.cancel()

    try:
        import uvloop

        return uvloop.run(main())
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.run(main())


async def _exit_when_overdue(service: Service) -> None:
    """From the stop request on, a timer thread ends the process at the end of the grace
    period: it runs even when the event loop cannot (blocked, or tearing down tasks that
    ignore their cancellation), and when the interpreter waits at exit for a thread stuck in
    a venue call. A daemon thread, so a process that exits in time never waits for it."""
    await service.stopping.wait()
    grace = service.settings.shutdown_grace

    def overdue() -> None:
        log.critical("still running at the end of the grace period; exiting", extra={"grace": grace})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    timer = threading.Timer(grace, overdue)
    timer.daemon = True
    timer.start()

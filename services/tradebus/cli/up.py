"""`tradebus up`: the whole fleet on one machine.

Starts an embedded nats-server with JetStream (or, with `--cluster N`, a cluster of N on
loopback ports: upbus.py), then every service as its own process
(exactly what `tradebus run` would start in a container), supervises them (supervisor.py)
and the nats-server (busguard.py), shows a live status table judged from the services' heartbeats and processes, with the
supervisor's messages above it, and stops everything cleanly on Ctrl-C / SIGTERM. The fleet
lives in one data dir, locked for its life (datadirlock.py), and every service gets it
(TRADEBUS_DATA_DIR): the audit store is the fleet's own. Every child dies with `up`, also a
killed one (parentdeath.py), so the lock is free again once `up` is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import nats
import nats.aio.msg

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, decoder
from tradebus.schemas.subjects import Family
from tradebus.services.connector.venuespecs import DEFAULT_VENUE, venue_spec
from tradebus.services.settings import load_settings
from tradebus.shared.busaccess import connect_bus
from tradebus.shared.config import EXIT_CONFIG, ConfigError
from tradebus.shared.credentials import Credentials, load_credentials
from tradebus.shared.launcher import service_command
from tradebus.shared.natscluster import CLUSTER_REPLICAS
from tradebus.shared.topology import StreamSettings

from .busguard import BusGuard
from .datadirlock import DataDirInUse, DataDirLock
from .emulatedfleet import EMULATED_ACCOUNT, EmulatedVenues
from .liveness import Watch, status_table
from .secure import SecureFleet, prepare, provision_fleet
from .supervisor import STOP_MARGIN, Child, Notes, Supervisor, stop_all
from .upbus import BusNotStarted, provision_replicated, start_bus

_status_decoder = decoder(Family.STATUS)


def _nats_port(args: argparse.Namespace) -> int:
    """--nats-port, else the port of --nats-url / TRADEBUS_NATS_URL (its first URL's), else 4222."""
    port: int = args.nats_port
    if port:
        return port
    url = args.nats_url or os.environ.get("TRADEBUS_NATS_URL")
    return (urlparse(url.split(",")[0]).port if url else None) or 4222  # a cluster's: its first node's


ORDER_PATH = ("risk", "oms", "audit")
FLEET_SERVICES = (*ORDER_PATH, "sizing")  # the order path and the services beside it


def _children(venues: tuple[str, ...], log_dir: Path, nats_url: str, config_path: str | None,
              venue_env: dict[str, dict[str, str]], secure: SecureFleet | None) -> list[Child]:
    """The order path (risk, order manager, audit logger), the sizing service and one
    connector per venue, each with its own bus identity on a secured fleet."""
    options = ["--nats-url", nats_url, *(["--config", config_path] if config_path else [])]

    def identity(service: str, venue: str = "") -> dict[str, str]:
        if secure is None:
            return {}
        own = {"TRADEBUS_NATS_CREDENTIALS": str(secure.service_credentials(service, venue))}
        if service == "oms":  # it answers each tenant about that tenant's accounts only
            own["TRADEBUS_OMS__TENANTS_FILE"] = str(secure.tenants_file)
        return own

    services = [Child(name, service_command(name, *options), log_dir / f"{name}.log", own_env=identity(name))
                for name in FLEET_SERVICES]
    return services + [
        Child(f"connector.{venue}", service_command(f"connector.{venue}", *options, python=connector_python(venue)),
              log_dir / f"connector.{venue}.log", own_env={**venue_env.get(venue, {}), **identity("connector", venue)})
        for venue in venues
    ]


def connector_python(venue: str) -> str:
    """The interpreter of a venue's connector: the venue's own environment where its spec
    names one that this one is not (Fyers: .venv-fyers, made by .ci/fyers-env), else this one.
    The environment is looked for in the working directory, then beside this interpreter's own
    environment (a checkout's .venv and .venv-fyers are siblings), so `up` works from any directory."""
    try:
        spec = venue_spec(venue)
    except ValueError:
        return sys.executable  # the connector refuses an unknown venue itself: up shows why and runs on
    if spec.environment is None or spec.in_this_environment:
        return sys.executable
    places = [Path.cwd(), Path(sys.prefix).parent]
    for place in places:
        python = place / spec.environment / "bin" / "python"
        if python.exists():
            return str(python.absolute())
    looked = " and ".join(str(place / spec.environment) for place in places)
    raise ConfigError(f"the {venue} connector runs from {spec.environment}, which exists neither at {looked}: "
                      f"run `bash .ci/fyers-env` in the repository (docs/venues.md)")


class _Connection:
    """How long `up`'s own bus connection has been up without a break."""

    def __init__(self) -> None:
        self.since: float | None = time.monotonic()

    def up_for(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    async def lost(self) -> None:
        self.since = None

    async def back(self) -> None:
        self.since = time.monotonic()

    async def error(self, exc: Exception) -> None:
        """Quiet: a lost bus is reported by BusGuard's notes, not by nats-py's tracebacks."""


async def _supervise(supervisor: Supervisor, buses: list[BusGuard], stop: asyncio.Event,
                     credentials: Credentials | None) -> None:
    watch = Watch()
    connection = _Connection()
    nats_url = ",".join(bus.server.url for bus in buses)
    nc = await connect_bus(nats_url, name="tradebus-up", credentials=credentials, max_reconnect_attempts=-1,
                           reconnect_time_wait=0.5, disconnected_cb=connection.lost, reconnected_cb=connection.back,
                           error_cb=connection.error)

    async def on_status(msg: nats.aio.msg.Msg) -> None:
        try:
            watch.observe(_status_decoder.decode(msg.data))
        except DecodeError:
            pass

    await nc.subscribe(subjects.ALL_STATUS, cb=on_status)
    last_printed = ""
    try:
        while not stop.is_set():
            for bus in buses:
                await bus.check()
            supervisor.tick(watch, bus_up_for=connection.up_for())
            rows = [*(bus.row() for bus in buses), *supervisor.rows(watch)]
            table = status_table(rows, supervised=True)
            states = str([(row.key, row.state, row.restarts) for row in rows])
            if not supervisor.notes.echo:  # a terminal: redraw the messages and the table
                sys.stdout.write("\x1b[H\x1b[2J" + _banner(nats_url) + supervisor.notes.render() + table + "\n")
            elif states != last_printed:  # a log-friendly table only when states or restarts change
                print(table, flush=True)
                last_printed = states
            sys.stdout.flush()
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    finally:
        await nc.close()


def _banner(nats_url: str) -> str:
    return f"tradebus up: NATS at {nats_url}. Ctrl-C stops the fleet.\n\n"


async def _up(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)  # refuse a bad config before starting anything
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    data_dir = Path(args.data_dir or settings.data_dir).absolute()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = DataDirLock.acquire(data_dir)
    except DataDirInUse as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    try:
        return await _up_locked(args, data_dir, log_dir, lock, stop_grace=settings.shutdown_grace + STOP_MARGIN,
                                streams=settings.streams)
    finally:
        lock.release()


async def _up_locked(args: argparse.Namespace, data_dir: Path, log_dir: Path, lock: DataDirLock, *,
                     stop_grace: float, streams: StreamSettings) -> int:
    fleet = EmulatedVenues(args.config or os.environ.get("TRADEBUS_CONFIG"))
    if args.emulate:
        refusal = fleet.create(args.venue or [])
        if refusal is not None:
            print(refusal, file=sys.stderr)
            return 2
    venues = tuple(args.venue or [DEFAULT_VENUE])
    port = _nats_port(args)
    try:
        secure = prepare(data_dir, venues, EMULATED_ACCOUNT, args.tenants, port) if args.secure else None
    except ConfigError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        embedded = await start_bus(data_dir=data_dir, log_dir=log_dir, port=port, cluster=args.cluster, lock=lock,
                                   config_file=secure.config_file if secure else None)
    except BusNotStarted as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    notes = Notes(echo=not sys.stdout.isatty())
    buses = embedded.guards(lock, notes)
    buses[0].describe_holder()
    print(f"tradebus up: NATS at {embedded.url}, data in {data_dir}, service logs in {log_dir}", flush=True)
    if args.cluster:
        refused = await provision_replicated(embedded, streams, venues)
        if refused:
            print(f"tradebus: the cluster refused provisioning: {'; '.join(refused)}", file=sys.stderr)
            embedded.stop()
            return 1
        print(f"tradebus up: a {args.cluster}-node cluster; streams and buckets have {CLUSTER_REPLICAS} replicas",
              flush=True)
    operator = None
    if secure is not None:
        operator = load_credentials(secure.operator)
        try:
            await provision_fleet(embedded.url, load_credentials(secure.provisioner), venues)
        except Exception as exc:
            print(f"tradebus: provisioning the secured bus failed: {exc}", file=sys.stderr)
            embedded.stop()
            return 1
        for tenant in secure.tenants:
            print(f"tradebus up: secured; tenant {tenant.name} ({', '.join(map(str, tenant.accounts))}) connects with "
                  f"--credentials {secure.credentials(tenant.name)}", flush=True)
        print(f"tradebus up: operator (halt, resume, oms rebuild): --credentials {secure.operator}", flush=True)
    # The data dir wins over TRADEBUS_DATA_DIR and the file's data_dir in every service.
    env = {**os.environ, **embedded.env, "TRADEBUS_NATS_URL": embedded.url, "TRADEBUS_DATA_DIR": str(data_dir)}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    children: list[Child] = []
    try:
        config_path = await fleet.start(data_dir) if fleet.emulators else args.config
        for venue, url in fleet.urls().items():
            print(f"tradebus up: {venue} emulated at {url} (account {EMULATED_ACCOUNT})", flush=True)
        children = _children(venues, log_dir, embedded.url, config_path, fleet.credential_env, secure)
        supervisor = Supervisor(children, env, notes, stop_grace=stop_grace)
        supervisor.start()
        await _supervise(supervisor, buses, stop, operator)
    finally:
        print("tradebus up: stopping", flush=True)
        # in a thread: the emulated venues served from this loop must keep answering while
        # their connectors close their connections
        await asyncio.to_thread(stop_all, children, stop_grace)
        await fleet.stop()
        embedded.stop()
        print("tradebus up: stopped", flush=True)
    return 0


def up(args: argparse.Namespace) -> int:
    return asyncio.run(_up(args))

"""Who may do what on the bus: the grants of every identity, as data.

natsconf.py renders these into a nats-server configuration; tests/security reads them as
the expected outcome of its permission matrix. Three kinds of identity:

- Fleet services (risk, oms, audit, sizing, connector-<venue>), the operator and the provisioner:
  users of the FLEET account, where JetStream lives. Each may subscribe only to its own
  inboxes (`_INBOX.<user>.>`) and answers requests through `allow_responses` (a reply to a
  request it received, once), never by a grant on other users' inboxes. No service may
  create, update or delete a stream; a service may use its own durable consumer only, and may
  re-create it (a takeover) only with its filter pinned in the API subject.
- Tenants: one account each, reaching the fleet only through the subjects their account
  imports (natsconf.py): their venue accounts' commands and events, market data, status and
  the order manager's answers about their own orders. A publish ack or a reply that FLEET
  sends back to a tenant lands in the tenant's account, so no reply subject a tenant picks
  can reach a fleet stream or bucket.
- READONLY: dashboards; every event, market data, status and order query, no command.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradebus.schemas.subjects import PREFIX

from .credentials import inbox_prefix
from .topology import (
    AUDIT_CONSUMERS,
    OMS_EVENTS,
    OMS_ROUTES,
    ORDERS_BUCKET,
    RISK_BUCKET,
    RISK_COMMANDS,
    STREAMS,
    Consumer,
    connector_consumer,
)

FLEET_ACCOUNT = "FLEET"
READONLY_ACCOUNT = "READONLY"
PROVISION_USER = "provision"
OPERATOR_USER = "operator"
READONLY_USER = "readonly"
ORDER_PATH_USERS = ("risk", "oms", "audit")
SIZING_USER = "sizing"


@dataclass(frozen=True)
class Grants:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()
    allow_responses: bool = False


def connector_user(venue: str) -> str:
    return f"connector-{venue}"


def _inbox(user: str) -> str:
    return f"{inbox_prefix(user)}.>"


def _durable(consumer: Consumer) -> list[str]:
    """Use one durable: pull, ack, look at it, and re-create it with its own filter only."""
    stream, name = consumer.stream.name, consumer.durable
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}.{name}.{consumer.filter_subject}",
        f"$JS.API.CONSUMER.INFO.{stream}.{name}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.API.CONSUMER.DELETE.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]


def _bucket(bucket: str, *, write: bool) -> list[str]:
    grants = [f"$JS.API.STREAM.INFO.KV_{bucket}", f"$JS.API.DIRECT.GET.KV_{bucket}", f"$JS.API.DIRECT.GET.KV_{bucket}.>"]
    return grants + ([f"$KV.{bucket}.>"] if write else [])


def _service_base(status_subject: str, dead_letters: str) -> list[str]:
    """Every service: heartbeats, dead letters, and looking at (never changing) the streams."""
    return [status_subject, dead_letters, "$JS.API.INFO",
            *(f"$JS.API.STREAM.INFO.{stream.name}" for stream in STREAMS)]


def _takeover() -> list[str]:
    # the predecessor's last heartbeat, read before its durable is taken over (takeover.py)
    return ["$JS.API.DIRECT.GET.STATUS", "$JS.API.DIRECT.GET.STATUS.>"]


def _service_subscribe(user: str, *extra: str) -> tuple[str, ...]:
    return (*extra, f"{PREFIX}.ctl.ping", _inbox(user))


def fleet_grants(venues: tuple[str, ...]) -> dict[str, Grants]:
    """The FLEET account's users and what each may do."""
    grants = {
        "risk": Grants(
            publish=(
                f"{PREFIX}.route.>",  # approved commands: risk alone
                f"{PREFIX}.evt.reject.>",  # its refusals: a family that cannot carry fills
                f"{PREFIX}.evt.risk",  # trading state changes
                f"{PREFIX}.ctl.md.>",  # quote leases for the price collar
                *_service_base(f"{PREFIX}.status.risk.>", f"{PREFIX}.dlq.risk.>"),
                *_durable(RISK_COMMANDS), *_takeover(),
                # exposure follows ROUTE and EVENTS through direct gets (follower.py)
                "$JS.API.DIRECT.GET.ROUTE", "$JS.API.DIRECT.GET.EVENTS",
                *_bucket(RISK_BUCKET, write=True),
            ),
            # ROUTE and EVENTS are read by direct gets; these subscriptions only say that more arrived
            subscribe=_service_subscribe("risk", f"{PREFIX}.md.>", f"{PREFIX}.ctl.risk", f"{PREFIX}.status.connector.*",
                                         f"$KV.{RISK_BUCKET}.>", f"{PREFIX}.route.>", f"{PREFIX}.evt.>"),
            deny_publish=(f"{PREFIX}.cmd.>", f"{PREFIX}.evt.order.>", f"{PREFIX}.evt.account.>"),
            allow_responses=True,
        ),
        "oms": Grants(
            publish=(
                f"{PREFIX}.ctl.reconcile.>",
                *_service_base(f"{PREFIX}.status.oms.>", f"{PREFIX}.dlq.oms.>"),
                *_durable(OMS_ROUTES), *_durable(OMS_EVENTS),
                "$JS.API.DIRECT.GET.ROUTE", "$JS.API.DIRECT.GET.EVENTS",
                *_bucket(ORDERS_BUCKET, write=True),
            ),
            subscribe=_service_subscribe("oms", f"{PREFIX}.ctl.oms", f"{PREFIX}.ctl.oms.tenant.*"),
            deny_publish=(f"{PREFIX}.route.>", f"{PREFIX}.cmd.>", f"{PREFIX}.evt.>"),
            allow_responses=True,
        ),
        "audit": Grants(
            publish=(
                *_service_base(f"{PREFIX}.status.audit.>", f"{PREFIX}.dlq.audit.>"),
                *(grant for consumer in AUDIT_CONSUMERS for grant in _durable(consumer)),
                # a store is bound to its streams by reading their messages (identity.py)
                *(f"$JS.API.STREAM.MSG.GET.{consumer.stream.name}" for consumer in AUDIT_CONSUMERS),
            ),
            subscribe=_service_subscribe("audit"),
            deny_publish=(f"{PREFIX}.route.>", f"{PREFIX}.cmd.>", f"{PREFIX}.evt.>"),
            allow_responses=True,
        ),
        # Sizing answers on its subject and asks the order manager (balances) and connectors
        # (instruments); it keeps nothing on the bus. Tenants do not reach it: an answer shows the
        # equity of whichever account is named, and tenants see only their own accounts.
        SIZING_USER: Grants(
            publish=(
                f"{PREFIX}.ctl.oms", f"{PREFIX}.ctl.instruments.>",
                *_service_base(f"{PREFIX}.status.sizing.>", f"{PREFIX}.dlq.sizing.>"),
            ),
            subscribe=_service_subscribe(SIZING_USER, f"{PREFIX}.ctl.sizing"),
            deny_publish=(f"{PREFIX}.route.>", f"{PREFIX}.cmd.>", f"{PREFIX}.evt.>"),
            allow_responses=True,
        ),
        OPERATOR_USER: _operator_grants(venues),
        PROVISION_USER: Grants(
            publish=("$JS.API.>",),
            subscribe=(_inbox(PROVISION_USER),),
            # provisioning creates and updates; losing data takes a deliberate act with the server's own tools
            deny_publish=("$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"),
        ),
    }
    for venue in venues:
        user = connector_user(venue)
        grants[user] = Grants(
            publish=(
                f"{PREFIX}.evt.order.{venue}.>", f"{PREFIX}.evt.account.{venue}.>", f"{PREFIX}.md.{venue}.>",
                *_service_base(f"{PREFIX}.status.connector.{venue}", f"{PREFIX}.dlq.connector.>"),
                *_durable(connector_consumer(venue)), *_takeover(),
                # the paper venue re-reads its own events at start (journal.py)
                "$JS.API.DIRECT.GET.EVENTS",
            ),
            subscribe=_service_subscribe(user, f"{PREFIX}.ctl.md.{venue}", f"{PREFIX}.ctl.instruments.{venue}",
                                         f"{PREFIX}.ctl.reconcile.{venue}"),
            deny_publish=(f"{PREFIX}.route.>", f"{PREFIX}.cmd.>", f"{PREFIX}.evt.risk", f"{PREFIX}.evt.reject.>"),
            allow_responses=True,
        )
    return grants


def _operator_grants(venues: tuple[str, ...]) -> Grants:
    """The operator: what a client may do for every account, the kill switch, `oms rebuild`,
    dead letters and read-only JetStream inspection; still no routed command or forged event."""
    return Grants(
        publish=(
            f"{PREFIX}.cmd.>", f"{PREFIX}.ctl.md.>", f"{PREFIX}.ctl.instruments.>", f"{PREFIX}.ctl.oms",
            f"{PREFIX}.ctl.ping", f"{PREFIX}.ctl.risk", f"{PREFIX}.ctl.sizing",
            # `tradebus halt / resume` work while risk is down: the CLI writes the state to the risk
            # bucket and records the change in EVENTS itself (no more power than the bucket gives)
            f"{PREFIX}.evt.risk",
            "$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
            "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.INFO.*.*",
            "$JS.API.DIRECT.GET.*", "$JS.API.DIRECT.GET.*.>", "$JS.API.STREAM.MSG.GET.*",
            *_bucket(RISK_BUCKET, write=True), *_bucket(ORDERS_BUCKET, write=True),
        ),
        subscribe=(f"{PREFIX}.md.>", f"{PREFIX}.evt.>", f"{PREFIX}.status.>", f"{PREFIX}.dlq.>", _inbox(OPERATOR_USER)),
        deny_publish=(f"{PREFIX}.route.>", f"{PREFIX}.evt.order.>", f"{PREFIX}.evt.account.>", f"{PREFIX}.evt.reject.>",
                      f"{PREFIX}.md.>", f"{PREFIX}.status.>"),
    )


@dataclass(frozen=True)
class Import:
    """One subject an outside account reaches in FLEET: a service (requests, commands: the
    answer comes back to the importer) or a stream (messages flow to the importer)."""

    kind: str  # "service" or "stream"
    subject: str  # as FLEET names it
    local: str = ""  # as the importer names it, if different
    responses: str = "singleton"  # "stream" for a request with several answers (ping)

    @property
    def local_subject(self) -> str:
        return self.local or self.subject


@dataclass(frozen=True)
class OutsideAccount:
    """A tenant's account or READONLY: its one user, its imports and that user's grants."""

    account: str
    user: str
    imports: tuple[Import, ...]
    grants: Grants = field(init=False)

    def __post_init__(self) -> None:
        publish = tuple(dict.fromkeys(item.local_subject for item in self.imports if item.kind == "service"))
        subscribe = (*dict.fromkeys(item.local_subject for item in self.imports if item.kind == "stream"), _inbox(self.user))
        object.__setattr__(self, "grants", Grants(publish=publish, subscribe=subscribe))


def _shared_imports() -> list[Import]:
    """What every outside account sees: market data, status, trading states, instruments."""
    return [
        Import("stream", f"{PREFIX}.md.>"),
        Import("stream", f"{PREFIX}.status.>"),
        Import("stream", f"{PREFIX}.evt.risk"),
        Import("service", f"{PREFIX}.ctl.md.*"),
        Import("service", f"{PREFIX}.ctl.instruments.*"),
        Import("service", f"{PREFIX}.ctl.ping", responses="stream"),
        # `tradebus status`: the last heartbeat of services that went silent (read only)
        Import("service", "$JS.API.DIRECT.GET.STATUS", responses="stream"),
    ]


def tenant_account(name: str, pairs: tuple[tuple[str, str], ...]) -> OutsideAccount:
    own: list[Import] = []
    for venue, account in pairs:
        own += [
            Import("service", f"{PREFIX}.cmd.{venue}.{account}"),
            Import("stream", f"{PREFIX}.evt.order.{venue}.{account}"),
            Import("stream", f"{PREFIX}.evt.account.{venue}.{account}"),
            Import("stream", f"{PREFIX}.evt.reject.{venue}.{account}"),
        ]
    # the tenant token is the server's doing: a tenant cannot ask in another's name
    own.append(Import("service", f"{PREFIX}.ctl.oms.tenant.{name}", local=f"{PREFIX}.ctl.oms"))
    return OutsideAccount(tenant_account_name(name), name, (*own, *_shared_imports()))


def tenant_account_name(name: str) -> str:
    return "TENANT_" + name.upper().replace("-", "_")


def readonly_account() -> OutsideAccount:
    return OutsideAccount(READONLY_ACCOUNT, READONLY_USER, (
        Import("stream", f"{PREFIX}.evt.>"),
        Import("service", f"{PREFIX}.ctl.oms"),
        *(item for item in _shared_imports() if item.subject != f"{PREFIX}.evt.risk"),  # in evt.> already
    ))

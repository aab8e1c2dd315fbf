"""Where each subject lives on Kafka: its topic and its key, exactly as the table in
docs/kafka.md ("Topics and keys") says, and back.

Kafka has no subject wildcards: a consumer reads whole topics. So a subject family's topic is
what its readers choose, the key keeps what must stay in order together (one account's
commands, routes and events: the key names the account, with the venue where one topic
holds several venues), and the whole NATS-form subject travels in the `Tradebus-Subject`
header, so every reader still sees the subject it sees on NATS. A record whose header does
not belong at its own topic and key is refused (`subject_of`): the key decides the
partition, so a record filed under another account's key would break that account's order.

Request subjects (`tradebus.ctl.*`) are not here: they become request and reply topics
(docs/kafka.md, "Requests without request/reply"). KV buckets become compacted topics
(`state_topic`), keyed by the bucket key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from tradebus.schemas import subjects
from tradebus.shared.topology import ORDERS_BUCKET, RISK_BUCKET

SUBJECT_HEADER = "Tradebus-Subject"
DEDUPE_HEADER = "Tradebus-Dedupe-Id"  # the logical message across retries (Nats-Msg-Id on JetStream)


class Placement(NamedTuple):
    topic: str
    key: str


@dataclass(frozen=True)
class _Rule:
    """One row of the table: the subject's tokens after the prefix (`{name}` binds a token),
    and the topic and key made of them."""

    tokens: tuple[str, ...]
    topic: str
    key: str

    def bind(self, tokens: list[str]) -> dict[str, str] | None:
        """The parameters of a concrete subject's tokens, None if this row is not its own."""
        if len(tokens) != len(self.tokens):
            return None
        bound: dict[str, str] = {}
        for pattern, token in zip(self.tokens, tokens, strict=True):
            if pattern.startswith("{"):
                bound[pattern[1:-1]] = token
            elif pattern != token:
                return None
        return bound


_P = subjects.PREFIX
RULES = (
    _Rule(("cmd", "{venue}", "{account}"), f"{_P}.cmd", "{venue}.{account}"),
    _Rule(("route", "{venue}", "{account}"), f"{_P}.route.{{venue}}", "{account}"),
    _Rule(("evt", "order", "{venue}", "{account}"), f"{_P}.evt.venue.{{venue}}", "{account}"),
    _Rule(("evt", "account", "{venue}", "{account}"), f"{_P}.evt.venue.{{venue}}", "{account}"),
    _Rule(("evt", "reject", "{venue}", "{account}"), f"{_P}.evt.risk", "{venue}.{account}"),
    _Rule(("evt", "risk"), f"{_P}.evt.risk", "fleet"),
    _Rule(("md", "{venue}", "{kind}", "{symbol}"), f"{_P}.md.{{venue}}", "{kind}.{symbol}"),
    _Rule(("status", "{service}", "{instance}"), f"{_P}.status", "{service}.{instance}"),
    _Rule(("dlq", "{service}", "{source}"), f"{_P}.dlq", "{service}.{source}"),
)

STATE_TOPICS = {ORDERS_BUCKET: f"{_P}.state.orders", RISK_BUCKET: f"{_P}.state.risk"}


def placement(subject: str) -> Placement:
    """The topic and key of a concrete subject; ValueError for anything the registry does not
    know (subjects.parse) or that does not travel as a record (requests)."""
    subjects.parse(subject)  # every token checked as the registry checks it
    tokens = subject.split(".")[1:]
    for rule in RULES:
        bound = rule.bind(tokens)
        if bound is not None:
            return Placement(rule.topic.format(**bound), rule.key.format(**bound))
    raise ValueError(f"{subject!r} is a request subject: it travels by request and reply topics, not as a record")


def subject_of(topic: str, key: bytes | None, header: bytes | str | None) -> str:
    """The subject of a record read from `topic` with `key`, from its `Tradebus-Subject`
    header; ValueError if it has none or the header's subject belongs elsewhere."""
    if header is None:
        raise ValueError(f"a record on {topic} without a {SUBJECT_HEADER} header")
    subject = header.decode() if isinstance(header, bytes) else header
    if placement(subject) != (topic, (key or b"").decode()):
        raise ValueError(f"a record on {topic} with key {key!r} says it is {subject!r}, which belongs at "
                         f"{placement(subject)}")
    return subject


def topics_for(subject_filter: str) -> set[str]:
    """The topics that hold every subject `subject_filter` matches; ValueError when they
    cannot be named (a wildcard where the topic takes a venue: reading every venue's topic
    takes a pattern subscription, which is not built yet) or when it matches nothing here."""
    wanted = subject_filter.split(".")
    if wanted[0] != _P:
        raise ValueError(f"not a {_P} subject filter: {subject_filter!r}")
    found: set[str] = set()
    for rule in RULES:
        bound = _bind_filter(rule, wanted[1:])
        if bound is None:
            continue
        names = [name for name in _fields(rule.topic) if name not in bound]
        if names:
            raise ValueError(f"{subject_filter!r} spans every {names[0]}'s topic of {rule.topic}: name the "
                             f"{names[0]}")
        found.add(rule.topic.format(**bound))
    if not found:
        raise ValueError(f"{subject_filter!r} matches no subject that travels as a record")
    return found


def _bind_filter(rule: _Rule, wanted: list[str]) -> dict[str, str] | None:
    """The parameters a filter fixes for a row it can match (wildcards bind nothing); None if
    no subject of the row matches it."""
    bound: dict[str, str] = {}
    for i, want in enumerate(wanted):
        if want == ">":
            return bound if len(rule.tokens) > i else None
        if i >= len(rule.tokens):
            return None
        pattern = rule.tokens[i]
        if want == "*":
            continue
        if pattern.startswith("{"):
            bound[pattern[1:-1]] = want
        elif pattern != want:
            return None
    return bound if len(wanted) == len(rule.tokens) else None


def _fields(template: str) -> list[str]:
    return [part.split("}")[0] for part in template.split("{")[1:]]


def state_topic(bucket: str) -> str:
    """The compacted topic that takes a KV bucket's place (keys stay the bucket's keys)."""
    try:
        return STATE_TOPICS[bucket]
    except KeyError:
        raise ValueError(f"no state topic for bucket {bucket!r}") from None

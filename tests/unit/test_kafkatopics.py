"""The subject <-> topic/key mapping of the Kafka transport (kafkatopics.py, docs/kafka.md's
table): every record subject has one place, the place and the header give the subject back,
a header that belongs elsewhere is refused, and a filter names the topics of what it matches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.schemas import subjects
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.kafkatopics import Placement, placement, state_topic, subject_of, topics_for
from tradebus.shared.transport import matches

NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
SYMBOLS = st.text(min_size=1, max_size=12)


@st.composite
def record_subjects(draw: st.DrawFn) -> str:
    venue, account = draw(NAMES), draw(NAMES)
    builders = [
        subjects.command(venue, account), subjects.route(venue, account), subjects.order_events(venue, account),
        subjects.account_events(venue, account), subjects.rejections(venue, account), subjects.RISK_EVENTS,
        subjects.market_data(venue, draw(st.sampled_from(list(MarketDataKind))), draw(SYMBOLS)),
        subjects.status(draw(NAMES), draw(NAMES)), subjects.dead_letter(draw(NAMES), draw(NAMES)),
    ]
    return draw(st.sampled_from(builders))


def test_the_table_row_by_row() -> None:
    assert placement("tradebus.cmd.paper.main") == Placement("tradebus.cmd", "paper.main")
    assert placement("tradebus.route.paper.main") == Placement("tradebus.route.paper", "main")
    assert placement("tradebus.evt.order.paper.main") == Placement("tradebus.evt.venue.paper", "main")
    assert placement("tradebus.evt.account.paper.main") == Placement("tradebus.evt.venue.paper", "main")
    assert placement("tradebus.evt.reject.paper.main") == Placement("tradebus.evt.risk", "paper.main")
    assert placement("tradebus.evt.risk") == Placement("tradebus.evt.risk", "fleet")
    assert placement(subjects.market_data("paper", MarketDataKind.QUOTE, "BRK.B")) == Placement(
        "tradebus.md.paper", "quote.BRK~2EB")
    assert placement("tradebus.status.risk.main") == Placement("tradebus.status", "risk.main")
    assert placement("tradebus.dlq.oms.order_event") == Placement("tradebus.dlq", "oms.order_event")
    assert state_topic("tradebus_orders") == "tradebus.state.orders"
    assert state_topic("tradebus_risk") == "tradebus.state.risk"


@pytest.mark.parametrize("subject", ["tradebus.ctl.oms", "tradebus.ctl.md.paper", "tradebus.ctl.ping",
                                     "tradebus.cmd.paper", "tradebus.cmd.pa.per.x", "other.cmd.a.b"])
def test_what_is_not_a_record_subject_has_no_place(subject: str) -> None:
    with pytest.raises(ValueError):
        placement(subject)


@given(record_subjects())
def test_the_place_and_the_header_give_the_subject_back(subject: str) -> None:
    topic, key = placement(subject)
    assert subject_of(topic, key.encode(), subject.encode()) == subject
    assert matches(subject, subject) and topic in topics_for(subject)


@given(record_subjects(), record_subjects())
def test_two_subjects_share_a_place_only_as_one_accounts_order_and_account_events(first: str, second: str) -> None:
    if first != second and placement(first) == placement(second):
        assert {first.split(".")[2], second.split(".")[2]} == {"order", "account"}
        assert first.split(".")[3:] == second.split(".")[3:]


@given(NAMES, NAMES, NAMES)
def test_one_accounts_commands_routes_and_events_each_keep_one_key(venue: str, account: str, other: str) -> None:
    """A key decides the partition: one key per account and topic keeps its records in order."""
    assert placement(subjects.route(venue, account)).key == placement(subjects.order_events(venue, account)).key
    assert placement(subjects.command(venue, account)).key == placement(subjects.rejections(venue, account)).key
    if other != account:
        assert placement(subjects.command(venue, account)).key != placement(subjects.command(venue, other)).key


@given(record_subjects(), record_subjects())
def test_a_header_that_belongs_elsewhere_is_refused(subject: str, header: str) -> None:
    topic, key = placement(subject)
    if placement(header) != (topic, key):
        with pytest.raises(ValueError, match="belongs at"):
            subject_of(topic, key.encode(), header.encode())


def test_a_record_without_a_subject_is_refused() -> None:
    with pytest.raises(ValueError, match="without"):
        subject_of("tradebus.cmd", b"paper.main", None)


@given(record_subjects(), st.data())
def test_a_filter_names_the_topic_of_every_subject_it_matches(subject: str, data: st.DataObject) -> None:
    """Wildcards put over the tokens that do not choose the topic (the key's)."""
    tokens = subject.split(".")
    topic_tokens = {"cmd": 2, "route": 3, "md": 3, "status": 2, "dlq": 2}.get(tokens[1]) or (
        4 if tokens[2] in ("order", "account") else 3)
    wildcarded = [data.draw(st.sampled_from([token, "*"])) if i >= topic_tokens else token
                  for i, token in enumerate(tokens)]
    if len(tokens) > topic_tokens and data.draw(st.booleans()):
        wildcarded = [*wildcarded[:topic_tokens], ">"]
    subject_filter = ".".join(wildcarded)
    assert matches(subject, subject_filter)
    assert placement(subject).topic in topics_for(subject_filter)


def test_filters_over_several_topics() -> None:
    assert topics_for("tradebus.evt.*.paper.*") == {"tradebus.evt.venue.paper", "tradebus.evt.risk"}
    assert topics_for("tradebus.evt.order.paper.>") == {"tradebus.evt.venue.paper"}
    assert topics_for("tradebus.cmd.>") == {"tradebus.cmd"}
    with pytest.raises(ValueError, match="venue"):
        topics_for("tradebus.route.>")  # every venue's topic: a pattern subscription, not built yet
    with pytest.raises(ValueError, match="no subject"):
        topics_for("tradebus.ctl.oms")


@pytest.mark.parametrize(("subject", "subject_filter", "expected"), [
    ("a.b.c", "a.*.c", True), ("a.b.c", "a.>", True), ("a", "a.>", False), ("a.b", "a.*.c", False),
    ("a.b.c", "a.b", False), ("a.b", "a.b.c", False), ("a.x.c", "a.b.c", False),
])
def test_wildcards_match_as_on_nats(subject: str, subject_filter: str, expected: bool) -> None:
    assert matches(subject, subject_filter) is expected

"""Subject registry: reversible symbol tokens, builders and parsers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.schemas import subjects
from tradebus.schemas.subjects import Family, decode_token, encode_token
from tradebus.schemas.values import MarketDataKind

HOSTILE = ["BRK.B", "M&M", "BTC/USDT:USDT", "NSE:RELIANCE", "a b", "tab\there", "new\nline", "ü€😀", "*", ">",
           "a.*.>", "~", "~2E", "%41", ".", "..", " ", "NSE:M&M-EQ"]
FORBIDDEN_IN_TOKEN = set(".*> \t\r\n")


@pytest.mark.parametrize("symbol", HOSTILE)
def test_hostile_symbols_become_one_safe_token_and_come_back(symbol: str) -> None:
    token = encode_token(symbol)
    assert token and not (set(token) & FORBIDDEN_IN_TOKEN)
    assert token.isascii()
    assert decode_token(token) == symbol


def test_common_symbols_stay_readable() -> None:
    assert encode_token("BTC/USDT:USDT") == "BTC/USDT:USDT"
    assert encode_token("BRK.B") == "BRK~2EB"
    assert encode_token("M&M") == "M~26M"


@given(st.text(min_size=1, max_size=40))
def test_any_text_round_trips_and_the_token_is_canonical(symbol: str) -> None:
    token = encode_token(symbol)
    assert not set(token) & FORBIDDEN_IN_TOKEN
    assert decode_token(token) == symbol
    assert encode_token(decode_token(token)) == token


@pytest.mark.parametrize("token", ["", "~", "~2", "~2e", "~ZZ", "~41", "a.b", "a b", "~FF", "~C3"])
def test_tokens_no_symbol_encodes_to_are_refused(token: str) -> None:
    with pytest.raises(ValueError):
        decode_token(token)


def test_encode_refuses_an_empty_symbol() -> None:
    with pytest.raises(ValueError):
        encode_token("")


@pytest.mark.parametrize("symbol", HOSTILE)
def test_market_data_subjects_parse_back(symbol: str) -> None:
    subject = subjects.market_data("paper", MarketDataKind.QUOTE, symbol)
    assert subject.count(".") == 4
    parsed = subjects.parse(subject)
    assert (parsed.family, parsed.venue, parsed.kind, parsed.symbol) == (Family.MARKET_DATA, "paper", MarketDataKind.QUOTE, symbol)


def test_every_builder_parses_back_to_its_family() -> None:
    built = {
        subjects.command("binance", "acct-1"): Family.COMMAND,
        subjects.route("binance", "acct-1"): Family.ROUTE,
        subjects.order_events("binance", "acct-1"): Family.ORDER_EVENT,
        subjects.account_events("binance", "acct-1"): Family.ACCOUNT_EVENT,
        subjects.rejections("binance", "acct-1"): Family.REJECTION,
        subjects.oms_tenant_query("alpha"): Family.OMS_TENANT_QUERY,
        subjects.market_data_control("binance"): Family.MARKET_DATA_CONTROL,
        subjects.instruments("binance"): Family.INSTRUMENTS,
        subjects.status("connector", "binance"): Family.STATUS,
        subjects.PING: Family.PING,
        subjects.OMS_QUERY: Family.OMS_QUERY,
        subjects.reconcile("binance"): Family.RECONCILE,
        subjects.RISK_CONTROL: Family.RISK_CONTROL,
        subjects.RISK_EVENTS: Family.RISK_EVENT,
        subjects.SIZING: Family.SIZING,
        subjects.dead_letter("risk", "trading_state"): Family.DEAD_LETTER,
    }
    for subject, family in built.items():
        parsed = subjects.parse(subject)
        assert parsed.family is family
        if parsed.venue is not None:
            assert parsed.venue == "binance"
        if parsed.account is not None:
            assert parsed.account == "acct-1"


def test_every_registry_pattern_has_a_builder_that_matches_it() -> None:
    patterns = {spec.pattern.replace("{venue}", "v").replace("{account}", "a").replace("{kind}", "quote")
                .replace("{symbol}", "S").replace("{service}", "s").replace("{instance}", "i").replace("{source}", "f")
                .replace("{tenant}", "t") for spec in subjects.SUBJECTS}
    built = {subjects.command("v", "a"), subjects.route("v", "a"), subjects.order_events("v", "a"),
             subjects.account_events("v", "a"), subjects.market_data("v", MarketDataKind.QUOTE, "S"),
             subjects.market_data_control("v"), subjects.instruments("v"), subjects.status("s", "i"), subjects.PING,
             subjects.OMS_QUERY, subjects.reconcile("v"), subjects.RISK_CONTROL, subjects.RISK_EVENTS,
             subjects.dead_letter("s", "f"), subjects.rejections("v", "a"), subjects.oms_tenant_query("t"),
                 subjects.SIZING}
    assert patterns == built


def test_answers_to_a_command_are_the_venue_events_and_the_rejections() -> None:
    assert subjects.answers("paper", "demo") == ("tradebus.evt.order.paper.demo", "tradebus.evt.reject.paper.demo")
    assert subjects.parse(subjects.oms_tenant_query("alpha")).tenant == "alpha"
    with pytest.raises(ValueError):
        subjects.oms_tenant_query("a.b")


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "", "x" * 33, "sp ace"])
def test_builders_refuse_names_that_would_break_the_subject(bad: str) -> None:
    with pytest.raises(ValueError):
        subjects.command(bad, "demo")
    with pytest.raises(ValueError):
        subjects.order_events("paper", bad)


@pytest.mark.parametrize("subject", ["tradebus", "other.cmd.a.b", "tradebus.cmd.a", "tradebus.md.v.nope.S",
                                     "tradebus.md.v.quote.~ZZ", "tradebus.evt.order.v.a.extra"])
def test_parse_refuses_unknown_subjects(subject: str) -> None:
    with pytest.raises(ValueError):
        subjects.parse(subject)


def test_filters_use_wildcards_only_for_missing_parts() -> None:
    assert subjects.market_data_filter() == "tradebus.md.*.*.*"
    assert subjects.market_data_filter("paper", MarketDataKind.BAR, "BRK.B") == "tradebus.md.paper.bar.BRK~2EB"

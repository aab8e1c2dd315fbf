"""The Indian exchange calendar as data (tradebus.markets.india.calendarfile): the shipped
2026 file, an operator's directory adding 2027 (through a venue's `calendar_dir`), and the
files refused at start."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from decimal import Decimal
from pathlib import Path

import pytest

from tradebus.markets import india
from tradebus.markets.india.calendarfile import SHIPPED_DIR, McxSession, read_calendar
from tradebus.schemas.values import RejectReason
from tradebus.services.connector.venues.paper.india import IndianRules, IndiaSettings
from tradebus.shared.config import ConfigError

from .test_india_rules import INFY, MCX_FUT, ist
from .test_india_venues import INFY as PAPER_INFY

MORNING, EVENING = McxSession.MORNING, McxSession.EVENING

# The 2026 data as calendar2026.py held it before it became calendars/2026.toml.
EQUITY_2026 = {
    "01-15": "Municipal Corporation elections in Maharashtra", "01-26": "Republic Day", "03-03": "Holi",
    "03-26": "Shri Ram Navami", "03-31": "Shri Mahavir Jayanti", "04-03": "Good Friday",
    "04-14": "Dr. Baba Saheb Ambedkar Jayanti", "05-01": "Maharashtra Day", "05-28": "Bakri Id", "06-26": "Muharram",
    "09-14": "Ganesh Chaturthi", "10-02": "Mahatma Gandhi Jayanti", "10-20": "Dussehra",
    "11-10": "Diwali Balipratipada", "11-24": "Prakash Gurpurb Sri Guru Nanak Dev", "12-25": "Christmas",
}
MCX_2026 = {
    "01-01": ("New Year Day", {EVENING}), "01-15": ("Municipal Corporation elections in Maharashtra", {MORNING}),
    "02-01": ("Union Budget: special session, morning only", {EVENING}), "01-26": ("Republic Day", {MORNING, EVENING}),
    "03-03": ("Holi", {MORNING}), "03-31": ("Shri Mahavir Jayanti", {MORNING}),
    "04-03": ("Good Friday", {MORNING, EVENING}), "04-14": ("Dr. Baba Saheb Ambedkar Jayanti", {MORNING}),
    "05-01": ("Maharashtra Day", {MORNING}), "05-28": ("Bakri Id", {MORNING}), "06-26": ("Muharram", {MORNING}),
    "09-14": ("Ganesh Chaturthi", {MORNING}), "10-02": ("Mahatma Gandhi Jayanti", {MORNING, EVENING}),
    "10-20": ("Dussehra", {MORNING}), "11-10": ("Diwali Balipratipada", {MORNING}),
    "11-24": ("Guru Nanak Jayanti", {MORNING}), "12-25": ("Christmas", {MORNING, EVENING}),
}

CALENDAR_2027 = """
year = 2027
mcx_early_close_from = 2027-03-15
mcx_early_close_until = 2027-11-08
mcx_close_early = 23:30:00
mcx_close_late = 23:55:00
equity_holidays = [{ date = 2027-01-26, name = "Republic Day" }]
mcx_holidays = [{ date = 2027-01-26, name = "Republic Day", closes = ["morning"] }]
special_sessions = [{ date = 2027-02-07, name = "a Sunday session", segments = ["NSE"] }]
"""


def on(month_day: str, year: int = 2026) -> date:
    return date.fromisoformat(f"{year}-{month_day}")


@pytest.fixture(autouse=True)
def shipped_calendars() -> Iterator[None]:
    """Every test leaves the process on the shipped calendars, as it found it."""
    yield
    india.use_calendars(None)


def operator_dir(tmp_path: Path, **files: str) -> str:
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_the_shipped_2026_file_holds_what_calendar2026_py_held() -> None:
    shipped = read_calendar(SHIPPED_DIR / "2026.toml")
    assert shipped.equity_holidays == {on(day): name for day, name in EQUITY_2026.items()}
    assert shipped.mcx_holidays == {on(day): (name, frozenset(closes)) for day, (name, closes) in MCX_2026.items()}
    assert shipped.special_sessions == {on("02-01"): ("Union Budget live trading session", frozenset(
        {india.Segment.NSE, india.Segment.BSE, india.Segment.NFO, india.Segment.BFO, india.Segment.MCX}))}
    assert shipped.mcx_early_close == (on("03-09"), on("11-02"))
    assert (shipped.mcx_close_early, shipped.mcx_close_late) == (time(23, 30), time(23, 55))


def test_a_2027_file_in_the_venues_calendar_dir_opens_2027(tmp_path: Path) -> None:
    spec = PAPER_INFY
    monday, republic_day = ist("2027-01-04 11:00"), ist("2027-01-26 11:00")
    without = IndianRules([spec], IndiaSettings(market_hours=True))
    assert without(spec, Decimal(1), (None,), monday).reason is RejectReason.MARKET_CALENDAR_UNKNOWN
    rules = IndianRules([spec], IndiaSettings(market_hours=True, calendar_dir=operator_dir(tmp_path, **{"2027": CALENDAR_2027})))
    assert rules(spec, Decimal(1), (None,), monday) is None
    refused = rules(spec, Decimal(1), (None,), republic_day)
    assert refused is not None and refused.reason is RejectReason.MARKET_CLOSED
    assert "holiday (Republic Day)" in refused.message
    assert india.check_clock(INFY, ist("2027-02-07 11:00")) is None  # the special Sunday session
    assert india.check_clock(MCX_FUT, ist("2027-01-26 18:00")) is None  # the evening session stays open
    assert india.check_clock(MCX_FUT, ist("2027-01-26 10:00")).reason is RejectReason.MARKET_CLOSED
    assert india.check_clock(INFY, ist("2026-12-25 11:00")).reason is RejectReason.MARKET_CLOSED


def test_the_operators_file_for_a_year_replaces_the_shipped_one_whole(tmp_path: Path) -> None:
    no_christmas = CALENDAR_2027.replace("2027", "2026")
    india.use_calendars(operator_dir(tmp_path, **{"2026": no_christmas}))
    assert india.check_clock(INFY, ist("2026-12-25 11:00")) is None
    assert india.check_clock(INFY, ist("2026-01-26 11:00")).reason is RejectReason.MARKET_CLOSED


def test_an_unknown_year_says_where_its_file_goes(tmp_path: Path) -> None:
    refused = india.check_clock(INFY, ist("2028-01-04 11:00"))
    assert refused is not None and refused.reason is RejectReason.MARKET_CALENDAR_UNKNOWN
    assert "calendar_dir setting" in refused.message and "docs/venues.md" in refused.message
    directory = operator_dir(tmp_path, **{"2027": CALENDAR_2027})
    india.use_calendars(directory)
    refused = india.check_clock(INFY, ist("2028-01-04 11:00"))
    assert refused is not None and "(known: 2026, 2027)" in refused.message
    assert f"put the exchanges' 2028 holidays in 2028.toml in {directory}" in refused.message


@pytest.mark.parametrize(("text", "problem"), [
    (CALENDAR_2027 + "weekend_holidays = []\n", "unknown field `weekend_holidays`"),
    (CALENDAR_2027.replace("date = 2027-01-26, name", "date = 26-01-2027, name", 1), "2027.toml"),  # not TOML
    (CALENDAR_2027.replace('date = 2027-01-26, name = "Republic Day" }]\nmcx', 'date = 2027, name = "x" }]\nmcx'),
     "Expected `date`, got `int`"),
    (CALENDAR_2027.replace('["morning"]', '["afternoon"]'), "Invalid enum value 'afternoon'"),
    (CALENDAR_2027.replace('["morning"]', "[]"), "MCX holiday 2027-01-26 closes no session"),
    (CALENDAR_2027.replace('["NSE"]', '["NSX"]'), "Invalid enum value 'NSX'"),
    (CALENDAR_2027.replace("2027-02-07", "2027-02-08"), "special session 2027-02-08 is a weekday"),
    (CALENDAR_2027.replace("date = 2027-01-26, name", "date = 2026-01-26, name", 1), "equity holiday 2026-01-26 is not in 2027"),
    (CALENDAR_2027.replace("]\nmcx_holidays", ', { date = 2027-01-26, name = "again" }]\nmcx_holidays'),
     "equity holiday 2027-01-26 is listed twice"),
    (CALENDAR_2027.replace("mcx_close_late = 23:55:00", "mcx_close_late = 16:00:00"), "mcx_close_late 16:00:00"),
    (CALENDAR_2027.replace("mcx_early_close_until = 2027-11-08", "mcx_early_close_until = 2027-01-08"),
     "is not a span within 2027"),
    (CALENDAR_2027.replace("mcx_close_early = 23:30:00\n", ""), "missing required field `mcx_close_early`"),
])
def test_a_malformed_file_is_refused_at_load_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    directory = operator_dir(tmp_path, **{"2027": text})
    with pytest.raises(ConfigError) as refused:
        india.use_calendars(directory)
    assert f"calendar {tmp_path / '2027.toml'}: " in str(refused.value) and problem in str(refused.value)
    assert india.check_clock(INFY, ist("2027-01-04 11:00")).reason is RejectReason.MARKET_CALENDAR_UNKNOWN
    with pytest.raises(ConfigError):  # a venue with the file does not start
        IndianRules([], IndiaSettings(calendar_dir=directory))


def test_a_file_whose_year_is_not_its_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"2028\.toml: holds year 2027 but is named 2028\.toml \(name it 2027\.toml\)"):
        india.use_calendars(operator_dir(tmp_path, **{"2028": CALENDAR_2027}))


def test_a_calendar_dir_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        india.use_calendars(str(tmp_path / "missing"))

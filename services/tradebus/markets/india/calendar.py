"""When each segment trades: its sessions in IST, on the days its calendar says it is open.

A day is a trading day of a segment when it is a weekday and not one of its holidays, or a
weekend day the exchange opened specially. Sessions ([start, end) in IST):

- NSE, BSE: pre-open order entry 09:00-09:08 (matching and a buffer follow until 09:15,
  when no order is taken), normal market 09:15-15:30 (NSE "Market timings", as in the
  sources of calendars/2026.toml);
- NFO, BFO: normal market 09:15-15:30;
- CDS: 09:00-17:00 (https://zerodha.com/brokerage-calculator/ contract specification:
  "Trading hours 9:00 am to 5:00 pm");
- MCX: morning 09:00-17:00 and evening 17:00-23:30 or 23:55 (the year's file).

The holidays, special sessions and MCX evening closes are data, one TOML file per year
(calendarfile.py): the years shipped in calendars/, and the operator's `calendar_dir` over
them, read by `use_calendars` when an Indian venue starts. A year without calendar data is
never guessed: `CalendarUnknown`, which the order check turns into a refusal
(`market_calendar_unknown`) saying where to put the year's file, so a stale table stops
trading loudly instead of trading through a holiday.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time

from .calendarfile import McxSession, YearCalendar, read_calendars
from .segments import IST, Segment


@dataclass
class _Calendars:
    """The calendars in use (one set per process: every Indian venue of it reads the same)."""

    years: dict[int, YearCalendar]
    operator_dir: str | None = None


_IN_USE = _Calendars(read_calendars(None))


def use_calendars(operator_dir: str | None) -> None:
    """Read the shipped years and `operator_dir`'s (the `calendar_dir` setting) and use them
    from now on; ConfigError (nothing changed) for a missing directory or a malformed file."""
    years = read_calendars(operator_dir)
    _IN_USE.years, _IN_USE.operator_dir = years, operator_dir


def known_years() -> list[int]:
    return sorted(_IN_USE.years)


class Phase(enum.Enum):
    OPEN = "open"  # orders are taken and matched
    PRE_OPEN = "pre_open"  # orders are taken for the opening auction
    CLOSED = "closed"


@dataclass(frozen=True)
class Session:
    name: str
    phase: Phase
    start: time
    end: time

    def holds(self, moment: time) -> bool:
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{self.name} {self.start:%H:%M}-{self.end:%H:%M}"


_PRE_OPEN = Session("pre-open", Phase.PRE_OPEN, time(9, 0), time(9, 8))
_NORMAL = Session("normal market", Phase.OPEN, time(9, 15), time(15, 30))
_SESSIONS: dict[Segment, tuple[Session, ...]] = {
    Segment.NSE: (_PRE_OPEN, _NORMAL),
    Segment.BSE: (_PRE_OPEN, _NORMAL),
    Segment.NFO: (_NORMAL,),
    Segment.BFO: (_NORMAL,),
    Segment.CDS: (Session("normal market", Phase.OPEN, time(9, 0), time(17, 0)),),
}


class CalendarUnknown(Exception):
    """No calendar data for the year asked about."""

    def __init__(self, segment: Segment, day: date) -> None:
        known = ", ".join(str(year) for year in known_years())
        where = _IN_USE.operator_dir or "the directory the venue's calendar_dir setting names (not set)"
        super().__init__(f"no {segment.value} trading calendar for {day.year} (known: {known}); "
                         f"refusing rather than guessing whether {day.isoformat()} is a trading day: "
                         f"put the exchanges' {day.year} holidays in {day.year}.toml in {where} and restart the "
                         f"venue (format: docs/venues.md, Indian market rules)")


@dataclass(frozen=True)
class MarketState:
    """What a segment is doing at one moment, and why."""

    segment: Segment
    phase: Phase
    at: datetime  # in IST
    why: str  # "normal market 09:15-15:30", "holiday (Holi)", "weekend", "outside its sessions (...)"

    def describe(self) -> str:
        return f"{self.segment.value} is {self.phase.value.replace('_', '-')} at {self.at:%Y-%m-%d %H:%M} IST ({self.why})"


def _data(segment: Segment, day: date) -> YearCalendar:
    data = _IN_USE.years.get(day.year)
    if data is None:
        raise CalendarUnknown(segment, day)
    return data


def closure(segment: Segment, day: date) -> str | None:
    """Why `segment` does not trade at all on `day` (weekend, a holiday), None if it trades."""
    data = _data(segment, day)
    special = data.special_sessions.get(day)
    if day.weekday() >= 5 and not (special and segment in special[1]):
        return "weekend"
    if segment is Segment.MCX:
        holiday = data.mcx_holidays.get(day)
        if holiday and holiday[1] >= set(McxSession):
            return f"holiday ({holiday[0]})"
        return None
    name = data.equity_holidays.get(day)
    return f"holiday ({name})" if name else None


def sessions(segment: Segment, day: date) -> tuple[Session, ...]:
    """The sessions `segment` holds on `day` (none on a day it is closed)."""
    if closure(segment, day) is not None:
        return ()
    if segment is not Segment.MCX:
        return _SESSIONS[segment]
    data = _data(segment, day)
    early_from, early_until = data.mcx_early_close
    close = data.mcx_close_early if early_from <= day < early_until else data.mcx_close_late
    closed = data.mcx_holidays.get(day, ("", frozenset()))[1]
    held = ((McxSession.MORNING, Session(McxSession.MORNING.value, Phase.OPEN, time(9, 0), time(17, 0))),
            (McxSession.EVENING, Session(McxSession.EVENING.value, Phase.OPEN, time(17, 0), close)))
    return tuple(session for name, session in held if name not in closed)


def ist(when_ns: int) -> datetime:
    """Unix nanoseconds as an IST datetime (to the microsecond, without float rounding)."""
    seconds, nanos = divmod(when_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, IST).replace(microsecond=nanos // 1000)


def market_state(segment: Segment, when_ns: int) -> MarketState:
    """The phase of `segment` at `when_ns` (Unix nanoseconds); CalendarUnknown for a year
    without data."""
    at = ist(when_ns)
    day, moment = at.date(), at.time()
    closed = closure(segment, day)
    if closed is not None:
        return MarketState(segment, Phase.CLOSED, at, closed)
    held = sessions(segment, day)
    for session in held:
        if session.holds(moment):
            return MarketState(segment, session.phase, at, str(session))
    listed = ", ".join(str(session) for session in held)
    return MarketState(segment, Phase.CLOSED, at, f"outside its sessions: {listed}")

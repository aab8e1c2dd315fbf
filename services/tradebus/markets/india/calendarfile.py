"""A year's trading calendar as data: one TOML file per year, `<year>.toml`.

The years shipped with tradebus are in `calendars/` next to this module; an operator adds
or corrects a year without a release by putting its file in a directory of their own (the
Indian venues' `calendar_dir` setting). A year found there replaces the shipped file of
that year whole (the operator's file wins; nothing is merged). The format is in
docs/venues.md ("Indian market rules") and calendars/2026.toml is a complete example.

Every file is checked at start: unknown keys, a wrong type, a date outside the file's year,
a year that is not the file's name, a date listed twice, a special session on a weekday or an
MCX close outside the evening session is a ConfigError naming the file, so a malformed
calendar stops the venue instead of leaving a market silently open.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import TypeVar

import msgspec

from tradebus.shared.config import ConfigError

from .segments import Segment

SHIPPED_DIR = Path(__file__).parent / "calendars"
MCX_EVENING_START = time(17, 0)


class McxSession(enum.Enum):
    MORNING = "morning"  # 09:00-17:00
    EVENING = "evening"  # 17:00 to the evening close


class _Holiday(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    date: date
    name: str


class _McxHoliday(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    date: date
    name: str
    closes: frozenset[McxSession]  # the sessions the holiday closes


class _SpecialSession(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    date: date
    name: str
    segments: frozenset[Segment]  # the segments trading their regular sessions that weekend day


class _CalendarFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    year: int
    mcx_early_close_from: date
    mcx_early_close_until: date
    mcx_close_early: time
    mcx_close_late: time
    equity_holidays: list[_Holiday] = []
    mcx_holidays: list[_McxHoliday] = []
    special_sessions: list[_SpecialSession] = []


_Entry = TypeVar("_Entry", _Holiday, _McxHoliday, _SpecialSession)


@dataclass(frozen=True)
class YearCalendar:
    """One year of the exchanges' calendar, keyed by date for calendar.py."""

    year: int
    path: Path  # the file it was read from
    equity_holidays: dict[date, str]  # NSE, BSE, NFO, BFO, CDS closed all day
    mcx_holidays: dict[date, tuple[str, frozenset[McxSession]]]
    special_sessions: dict[date, tuple[str, frozenset[Segment]]]  # weekend days with trading
    mcx_early_close: tuple[date, date]  # [from, until): the evening closes at mcx_close_early
    mcx_close_early: time
    mcx_close_late: time


def _by_date(path: Path, what: str, entries: list[_Entry], year: int) -> dict[date, _Entry]:
    found: dict[date, _Entry] = {}
    for entry in entries:
        day = entry.date
        if day.year != year:
            raise ConfigError(f"calendar {path}: {what} {day} is not in {year}")
        if day in found:
            raise ConfigError(f"calendar {path}: {what} {day} is listed twice")
        found[day] = entry
    return found


def read_calendar(path: Path) -> YearCalendar:
    """The calendar in `path`; ConfigError naming the file for anything malformed."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        data = msgspec.convert(raw, _CalendarFile, strict=True)
    except OSError as exc:
        raise ConfigError(f"calendar {path}: cannot read it: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"calendar {path}: {exc}") from None
    if path.stem != str(data.year):
        raise ConfigError(f"calendar {path}: holds year {data.year} but is named {path.name} (name it {data.year}.toml)")
    year = data.year
    equity = _by_date(path, "equity holiday", data.equity_holidays, year)
    mcx = _by_date(path, "MCX holiday", data.mcx_holidays, year)
    special = _by_date(path, "special session", data.special_sessions, year)
    for day, holiday in mcx.items():
        if not holiday.closes:
            raise ConfigError(f"calendar {path}: MCX holiday {day} closes no session (list morning, evening or both)")
    for day in special:
        if day.weekday() < 5:
            raise ConfigError(f"calendar {path}: special session {day} is a weekday (list weekend days only)")
    early = (data.mcx_early_close_from, data.mcx_early_close_until)
    if any(day.year != year for day in early) or early[0] > early[1]:
        raise ConfigError(f"calendar {path}: mcx_early_close_from {early[0]} to mcx_early_close_until {early[1]} "
                          f"is not a span within {year}")
    for name, close in (("mcx_close_early", data.mcx_close_early), ("mcx_close_late", data.mcx_close_late)):
        if close <= MCX_EVENING_START or close.tzinfo is not None:
            raise ConfigError(f"calendar {path}: {name} {close} is not an IST time after the evening session's "
                              f"{MCX_EVENING_START:%H:%M} start")
    return YearCalendar(
        year=year, path=path,
        equity_holidays={day: entry.name for day, entry in equity.items()},
        mcx_holidays={day: (entry.name, entry.closes) for day, entry in mcx.items()},
        special_sessions={day: (entry.name, entry.segments) for day, entry in special.items()},
        mcx_early_close=early, mcx_close_early=data.mcx_close_early, mcx_close_late=data.mcx_close_late,
    )


def _read_dir(directory: Path) -> dict[int, YearCalendar]:
    calendars = (read_calendar(path) for path in sorted(directory.glob("*.toml")))
    return {calendar.year: calendar for calendar in calendars}


def read_calendars(operator_dir: str | None) -> dict[int, YearCalendar]:
    """The shipped years with the operator's directory's years over them (a year in both:
    the operator's file, whole); ConfigError for a missing directory or a malformed file."""
    calendars = _read_dir(SHIPPED_DIR)
    if operator_dir is not None:
        directory = Path(operator_dir)
        if not directory.is_dir():
            raise ConfigError(f"calendar_dir {operator_dir}: not a directory")
        calendars |= _read_dir(directory)
    return calendars

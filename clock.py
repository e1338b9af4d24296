"""Time in one place: stored in UTC, shown and typed in BOT_TIMEZONE, whatever the server's zone."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

DB_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
INPUT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                 "%Y/%m/%d %H:%M", "%Y-%m-%d")
INPUT_YEARS = (2000, 2100)  # a typed year outside this is a typo (and 0001 overflows UTC)
WEEKDAYS = "一二三四五六日"


class TimeFormatError(ValueError):
    """A time typed by an organiser could not be read."""


class TimeRangeError(TimeFormatError):
    """A time was read, but its year is outside INPUT_YEARS (a typo)."""


class Clock:
    """Now, in UTC. With a fake start (BOT_FAKE_NOW) time still moves, from that start."""

    def __init__(self, fake_start: datetime | None = None):
        self._offset = 0.0
        if fake_start is not None:
            self._offset = fake_start.timestamp() - time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self._offset, tz=timezone.utc)

    def set(self, moment: datetime) -> None:
        """Jump to a moment (tests and demos)."""
        self._offset = moment.timestamp() - time.time()


def to_db(moment: datetime | None) -> str | None:
    """Aware datetime -> 'YYYY-MM-DDTHH:MM:SSZ' (UTC), sortable as text."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime: attach a zone before storing")
    return moment.astimezone(timezone.utc).strftime(DB_FORMAT)


def from_db(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, DB_FORMAT).replace(tzinfo=timezone.utc)


def parse_local(text: str, tz: ZoneInfo) -> datetime:
    """'2026-05-01 09:30' typed in BOT_TIMEZONE -> aware datetime. Raises TimeFormatError (also
    for a year outside INPUT_YEARS)."""
    cleaned = (text or "").strip()
    for fmt in INPUT_FORMATS:
        try:
            moment = datetime.strptime(cleaned, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
        if not INPUT_YEARS[0] <= moment.year <= INPUT_YEARS[1]:
            raise TimeRangeError(f"年份应在 {INPUT_YEARS[0]}–{INPUT_YEARS[1]} 之间：{text!r}")
        return moment
    raise TimeFormatError(f"时间格式应为 YYYY-MM-DD HH:MM：{text!r}")


def local(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz)


def fmt_local(moment: datetime | None, tz: ZoneInfo, *, year: bool = False) -> str:
    """A time as members read it: '5月1日(周四) 09:30'."""
    if moment is None:
        return "—"
    here = moment.astimezone(tz)
    day = f"{here.year}年" if year else ""
    return f"{day}{here.month}月{here.day}日(周{WEEKDAYS[here.weekday()]}) {here:%H:%M}"


def fmt_iso_local(moment: datetime | None, tz: ZoneInfo) -> str:
    """'2026-05-01 09:30' for exports and forms."""
    return "" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")

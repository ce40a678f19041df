"""The one source of "now", and the timestamp format every client agrees on.

Timestamps are written as JavaScript's `toISOString()` writes them
(`2026-11-23T14:03:07.123Z`) so that text order is time order; rows written by other
clients in other ISO-8601 forms are still parsed.
"""

from __future__ import annotations

import functools
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, overload


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to (tests, snapshots)."""

    def __init__(self, start: datetime | str = "2026-11-23T14:00:00.000Z") -> None:
        self._now = parse_ts(start) if isinstance(start, str) else start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime | str) -> None:
        with self._lock:
            self._now = parse_ts(when) if isinstance(when, str) else when


SYSTEM_CLOCK = SystemClock()


# Exactly what iso() writes: such a string is already canonical.
_OURS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def iso(when: datetime) -> str:
    """`2026-11-23T14:03:07.123Z`: UTC, milliseconds, `Z`."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    # Every send formats three of these, and CPython's isoformat() and %-formatting cost
    # more than the rest of the rules: the text up to the second is made once a second.
    key = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    seconds = _SECONDS.get(key)
    if seconds is None:
        if len(_SECONDS) >= 64:
            _SECONDS.clear()
        seconds = _SECONDS[key] = when.replace(microsecond=0, tzinfo=None).isoformat()
    return seconds + _MILLISECONDS[when.microsecond // 1000]


@functools.lru_cache(maxsize=64)
def span(seconds: float) -> timedelta:
    """`timedelta(seconds=…)` for the few spans a mesh uses (its windows, its expiry):
    every send computes three bounds, and building a timedelta from a float costs more
    than finding the one already built."""
    return timedelta(seconds=seconds)


_SECONDS: dict[tuple[int, ...], str] = {}
_MILLISECONDS = tuple(f".{ms:03d}Z" for ms in range(1000))


def parse_ts(text: str) -> datetime:
    """Parse any ISO-8601 form another client may have written; naive means UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_ts_or_none(text: object) -> datetime | None:
    """`text` as a time, or None for anything that is not a timestamp we can place: not
    text, not ISO-8601, or outside what a datetime holds once moved to UTC (another
    client's '0001-01-01T00:00:00+01:00')."""
    if not text or not isinstance(text, str):
        return None
    try:
        return parse_ts(text)
    except (ValueError, OverflowError):
        return None


@overload
def canonical(text: str) -> str: ...
@overload
def canonical(text: None) -> None: ...
def canonical(text: str | None) -> str | None:
    """`text` rewritten in our form when it parses, else as it is: timestamps the core
    hands out then sort and compare as time whoever wrote them."""
    if text is None or _OURS.fullmatch(text):  # the common case needs no parse (hot path)
        return text
    parsed = parse_ts_or_none(text)
    return iso(parsed) if parsed is not None else text

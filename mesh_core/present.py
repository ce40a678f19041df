"""How the CLI and the TUI show a status, a priority and an age: plain strings (glyphs,
style names, `3m`), defined once so the two front-ends cannot drift apart."""

from __future__ import annotations

from datetime import datetime

from .clock import parse_ts_or_none
from .models import Status

# (glyph, style name) of each reported status.
STATUS_GLYPHS = {
    Status.ACTIVE: ("●", "green"),
    Status.STALE: ("◐", "yellow"),
    Status.STOPPED: ("○", "bright_black"),
    Status.OTHER: ("◌", "magenta"),  # another client's own status: shown as it is
}
# The priorities shown and announced as pressing (marked in headers, the bell rings).
PRESSING = ("urgent", "high")
# (mark, style name) of each priority; an unknown priority shows as normal.
PRIORITY_MARKS = {
    "urgent": ("‼", "bold red"),
    "high": ("!", "bold yellow"),
    "normal": (" ", ""),
    "low": ("↓", "dim"),
}


def priority_mark(priority: str) -> tuple[str, str]:
    return PRIORITY_MARKS.get(priority, PRIORITY_MARKS["normal"])


def elapsed(when: str | None, now: datetime) -> str | None:
    """How long ago, in the largest unit that fits (`12s`, `4m`, `3h`, `2d`); `0s` for a
    time ahead of `now`; None when `when` is not a timestamp."""
    return elapsed_since(parse_ts_or_none(when), now)


def elapsed_since(then: datetime | None, now: datetime) -> str | None:
    """`elapsed` of a time already parsed (None: not a timestamp)."""
    if then is None:
        return None
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

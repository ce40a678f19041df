"""Small text helpers shared by the panes: ages, sparklines, priority marks (the glyphs
and style names themselves are mesh_core.present's, shared with the CLI)."""

from __future__ import annotations

import functools
from datetime import datetime

from rich.text import Text

from mesh_core.clock import parse_ts_or_none
from mesh_core.present import PRIORITY_MARKS, elapsed_since
from mesh_core.present import priority_mark as _mark

__all__ = ["PRIORITY_MARKS", "age", "local_moment", "local_stamp", "priority_mark", "sparkline"]

SPARK = " ▁▂▃▄▅▆▇█"


def age(when: str | None, now: datetime) -> str:
    """How long ago, in the largest unit that fits: `12s`, `4m`, `3h`, `2d`."""
    return elapsed_since(_parsed(when), now) or "?"


@functools.lru_cache(maxsize=8192)
def _parsed(when: str | None) -> datetime | None:
    """A refresh shows the age of every heartbeat and thread: each stamp is parsed once."""
    return parse_ts_or_none(when)


def sparkline(values: tuple[int, ...]) -> str:
    """One character a bucket, scaled to the busiest bucket; blank when idle."""
    peak = max(values, default=0)
    if peak == 0:
        return "·" * len(values)
    top = len(SPARK) - 1
    return "".join(SPARK[0 if v == 0 else max(1, round(v / peak * top))] for v in values)


def priority_mark(priority: str) -> Text:
    mark, style = _mark(priority)
    return Text(mark, style=style)


def local_stamp(when: str | None, now: datetime) -> str:
    """A time as the person reads it: local, with the day only when it is not today."""
    moment = parse_ts_or_none(when)
    return "?" if moment is None else local_moment(moment, now)


def local_moment(moment: datetime, now: datetime) -> str:
    """`local_stamp` of a parsed time: `18:50:20` today, `Dec 05 18:50` another day."""
    local = moment.astimezone()
    same_day = local.date() == now.astimezone().date()
    return local.strftime("%H:%M:%S" if same_day else "%b %d %H:%M")

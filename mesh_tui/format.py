"""Small text helpers shared by the panes: ages, sparklines, priority marks."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from mesh_core.clock import parse_ts_or_none

SPARK = " ▁▂▃▄▅▆▇█"
PRIORITY_MARKS = {
    "urgent": ("‼", "bold red"),
    "high": ("!", "bold yellow"),
    "normal": (" ", ""),
    "low": ("↓", "dim"),
}


def age(when: str | None, now: datetime) -> str:
    """How long ago, in the largest unit that fits: `12s`, `4m`, `3h`, `2d`."""
    then = parse_ts_or_none(when)
    if then is None:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def sparkline(values: tuple[int, ...]) -> str:
    """One character a bucket, scaled to the busiest bucket; blank when idle."""
    peak = max(values, default=0)
    if peak == 0:
        return "·" * len(values)
    top = len(SPARK) - 1
    return "".join(SPARK[0 if v == 0 else max(1, round(v / peak * top))] for v in values)


def priority_mark(priority: str) -> Text:
    mark, style = PRIORITY_MARKS.get(priority, PRIORITY_MARKS["normal"])
    return Text(mark, style=style)

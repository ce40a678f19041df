"""Getting the person's attention: toasts kept few, a log to re-read them, the bell, the
terminal title, and (opt-in) a desktop notification.

Times in notices are shown local and relative: a refusal's text from the mesh carries
UTC timestamps ("until 2026-12-02T18:50:20.667Z") that mean little at a glance.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from mesh_core.clock import parse_ts_or_none
from mesh_core.text import safe_line, safe_text
from mesh_tui.format import local_moment

MAX_TOASTS = 3
LOG_LIMIT = 200
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
NOTIFY_CHOICES = ("off", "osc", "notify-send")


def relative(delta_seconds: float) -> str:
    seconds = int(abs(delta_seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            amount = f"{seconds // size}{unit}"
            break
    else:
        amount = f"{seconds}s"
    return f"in {amount}" if delta_seconds > 0 else f"{amount} ago"


def humanize_times(text: str, now: datetime) -> str:
    """Every ISO timestamp in `text` as local time (with the day when not today) and how
    far from now."""

    def local(match: re.Match[str]) -> str:
        moment = parse_ts_or_none(match.group(0))
        if moment is None:
            return match.group(0)
        return f"{local_moment(moment, now)} ({relative((moment - now).total_seconds())})"

    return ISO_TIME.sub(local, text)


@dataclass(frozen=True)
class LoggedNotice:
    at: datetime
    title: str
    text: str
    severity: str


def terminal_title(unseen: int) -> str:
    return f"({unseen}) mesh-tui" if unseen else "mesh-tui"


def osc_title(title: str) -> str:
    """OSC 2: set the window title (the text is ours, but cleaned all the same)."""
    return f"\x1b]2;{safe_line(title, 60)}\x07"


def osc_notification(title: str, body: str) -> str:
    """OSC 9 (iTerm2, WezTerm, Windows Terminal) and OSC 777 (VTE: GNOME Terminal);
    terminals ignore the one they don't know. Control characters and ';' are removed
    from the untrusted parts so they cannot end the sequence early."""

    def clean(text: str) -> str:
        return safe_line(text, 120).replace(";", ",").replace("\x07", "").replace("\x1b", "")

    return (
        f"\x1b]9;{clean(title)}: {clean(body)}\x07\x1b]777;notify;{clean(title)};{clean(body)}\x07"
    )


def notify_send(title: str, body: str) -> None:
    """A desktop notification through notify-send, if it is installed (never waits)."""
    program = shutil.which("notify-send")
    if program is None:
        return
    subprocess.Popen(
        [program, "--app-name=mesh-tui", safe_line(title, 80), safe_line(body, 200)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class NotificationLog(ModalScreen[None]):
    """Every notice of this run, newest first, to re-read what a toast said."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,ctrl+n", "dismiss", "Close"),
    ]

    def __init__(self, notices: list[LoggedNotice], now: datetime) -> None:
        super().__init__()
        self.notices = notices
        self.now = now

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bright_black", no_wrap=True)
        table.add_column()
        styles = {"warning": "yellow", "error": "bold red"}
        for notice in reversed(self.notices):
            when = local_moment(notice.at, self.now)
            ago = relative((notice.at - self.now).total_seconds())
            line = Text()
            if notice.title:
                line.append(safe_line(notice.title, 60) + ": ", style="bold")
            line.append(safe_text(notice.text), style=styles.get(notice.severity, ""))
            table.add_row(Text(f"{when} ({ago})"), line)
        if not self.notices:
            table.add_row(Text(""), Text("Nothing yet.", style="bright_black"))
        with VerticalScroll(id="log-body") as body:
            body.border_title = "Notifications"
            body.border_subtitle = "esc closes"
            yield Static(table, markup=False)

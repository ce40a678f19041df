"""The roster `mesh agents` prints, laid out by hand (rich's Table is too slow for a
roster of thousands): columns line up by terminal cells, a name too wide for the
terminal folds onto further lines whole, and colour codes appear only on a terminal."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

from rich.cells import cell_len
from rich.console import Console

from mesh_cli.render import print_roster
from mesh_core.models import Agent, Status

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
SGR = re.compile(r"\x1b\[[0-9;]*m")


def agent(name: str, status: Status = Status.ACTIVE, description: str | None = None) -> Agent:
    return Agent(
        session_id=f"sid-{name}",
        agent_name=name,
        agent_description=description,
        cwd=None,
        repo=None,
        status=status,
        registered_at="2026-11-23T13:59:00.000Z",
        last_heartbeat="2026-11-23T13:59:50.000Z",
    )


def render(agents: list[Agent], width: int, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=terminal,
        color_system="standard" if terminal else "auto",  # auto: none into a file
    )
    print_roster(console, agents, NOW)
    return out.getvalue()


def test_columns_line_up_by_cells_with_wide_characters() -> None:
    text = render([agent("日本語チーム", description="docs"), agent("bob")], 120, False)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "description", "kind", "unread", "last", "heartbeat"]
    # "kind" starts at the same cell in every line, whatever the name's width.
    starts = {cell_len(line[: line.index("agent")]) for line in lines[1:]}
    assert len(starts) == 1
    assert "10s ago (active)" in lines[1] and not SGR.search(text)


def test_a_name_too_wide_for_the_terminal_folds_whole() -> None:
    long = "a-very-long-workspace-name-" * 4
    text = render([agent(long, description="x" * 50)], 60, False)
    lines = text.splitlines()
    assert all(cell_len(line) <= 60 for line in lines)
    name_column = "".join(line[3:].split("  ")[0] for line in lines[1:])
    assert name_column == long  # nothing lost, nothing cut with …


def test_colour_only_on_a_terminal_and_other_statuses_shown() -> None:
    odd = Agent(**{**agent("idler").__dict__, "status": Status.OTHER, "stored_status": "idle"})
    text = render([agent("bob"), odd, agent("old", Status.STOPPED)], 100, True)
    assert SGR.search(text)
    plain = SGR.sub("", text)
    assert "(other: idle)" in plain and "◌" in plain and "○" in plain

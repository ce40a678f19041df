"""Fixed data and scenes for the TUI tests, snapshots and screenshots: one mesh that
shows every roster state.

Built with a FixedClock that is moved by hand, so every timestamp, age and sparkline is
the same on every run. The person ("alice") is registered here, and the app is told to
act as her session, so nothing depends on the login name.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import TextArea

from mesh_core import FixedClock, Mesh, iso, parse_ts
from mesh_tui.app import MeshApp
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList

START = "2026-11-23T13:10:00.000Z"  # an hour before NOW: the sparklines' window
NOW = "2026-11-23T14:10:00.000Z"
Scene = Callable[[Pilot[None]], Awaitable[None]]


@dataclass
class World:
    mesh: Mesh
    clock: FixedClock
    me: str  # alice's session
    ids: dict[str, str]  # workspace name -> session id
    person_thread: int  # api-server <-> alice, with an unread urgent message for alice
    agents_thread: int  # api-server <-> web-frontend


def use_utc() -> None:
    """Times are shown in local time: pin it so snapshots match everywhere."""
    os.environ["TZ"] = "UTC"
    time.tzset()


def build_world(path: Path) -> World:
    use_utc()
    clock = FixedClock(START)
    mesh = Mesh(path, clock=clock)
    ids: dict[str, str] = {}

    def register(name: str, description: str, kind: str = "agent") -> str:
        ids[name] = mesh.register(
            name,
            kind=kind,
            description=description,
            cwd=f"/home/alice/src/{name}",
            repo="git@example.com:shop.git",
            metadata={"pid": 4242, "host": "workstation"},
        ).session_id
        return ids[name]

    me = register("alice", "a person at mesh-tui", kind="human")
    register("api-server", "REST API of the shop: orders and payments")
    register("web-frontend", "the storefront's React app")
    register("test-runner", "CI runner for every pull request")
    register("data-pipeline", "nightly import of the orders")
    register("old-prototype", "first try at the checkout flow")

    # Every event at its time, run in time order: message ids grow with time, as they do
    # on a real mesh (views rely on it to find the last hour by id).
    events: list[tuple[str, Callable[..., object]]] = []
    at = parse_ts(START)

    def stamp(seconds: float) -> str:
        return iso(at + timedelta(seconds=seconds))

    found: dict[str, int] = {}
    sent: dict[int, int] = {}

    def ask_build(step: int) -> None:
        sent[step] = mesh.send(
            ids["api-server"],
            "web-frontend",
            f"Build {step + 1}: /v2/orders now returns totals in cents.",
            priority="high" if step == 3 else "normal",
            new_thread=step == 0,
        ).message_id

    # An hour of talk between api-server and web-frontend, one exchange every 5 minutes.
    for step in range(12):
        events.append((stamp(step * 300 + 1), lambda step=step: ask_build(step)))
        events.append(
            (
                stamp(step * 300 + 31),
                lambda step=step: mesh.reply(
                    ids["web-frontend"], sent[step], "Thanks, client types regenerated."
                ),
            )
        )
    events.append((stamp(1500), lambda: mesh.deregister(ids["old-prototype"])))
    # test-runner is flooded: 55 unread requests from three senders, over 55 minutes.
    senders = ["api-server", "web-frontend", "data-pipeline"]
    for index in range(55):
        events.append(
            (
                stamp(59 * (index + 1)),
                lambda index=index: mesh.send(
                    ids[senders[index % 3]], "test-runner", f"Please re-run suite #{index + 1}."
                ),
            )
        )

    def ask() -> None:  # a thread for the person
        found["person"] = mesh.send(
            me, "api-server", "Is the payments outage over?", new_thread=True
        ).message_id

    events.append(("2026-11-23T14:06:30.000Z", ask))
    events.append(
        (
            "2026-11-23T14:07:30.000Z",
            lambda: mesh.reply(  # urgent, unread
                ids["api-server"],
                found["person"],
                "Not yet: card payments fail for 1 in 20 orders.\nI will tell you when it is.",
                priority="urgent",
            ),
        )
    )
    # web-frontend hits the rate limit to test-runner: 10 messages in the last minute.
    for index in range(10):
        events.append(
            (
                iso(parse_ts("2026-11-23T14:09:10.000Z") + timedelta(seconds=4 * index)),
                lambda index=index: mesh.send(
                    ids["web-frontend"], "test-runner", f"Flaky test {index + 1}, please rerun."
                ),
            )
        )
    for when, event in sorted(events, key=lambda e: e[0]):
        clock.set(when)
        event()
    clock.set(NOW)
    mesh.inbox(ids["web-frontend"])  # the two talkers have read their mail
    mesh.inbox(ids["api-server"])

    clock.set("2026-11-23T14:09:15.000Z")
    mesh.heartbeat(ids["data-pipeline"])  # its last beat: stale 47 s later
    clock.set(NOW)
    for name in ("alice", "api-server", "web-frontend", "test-runner"):
        mesh.heartbeat(ids[name])
    clock.advance(2)
    return World(mesh, clock, me, ids, found["person"], sent[0])


# -- the main views, shared by the snapshot tests and scripts/screenshots.py -------------

WIDE = (120, 36)
NARROW = (80, 24)
TOO_LONG = "All tests pass on main. " * 430  # 10,320 bytes: over the 10,240 limit


def make_app(world: World) -> MeshApp:
    """The app on the fixed world: no participant thread, no timers, a fixed db label."""
    return MeshApp(
        world.mesh,
        live=False,
        session_id=world.me,
        name="alice",
        db_label="~/.agent-mesh/agent-mesh.db",
    )


async def settle(pilot: Pilot[None]) -> None:
    """Let the read workers and the search index's thread finish and their results
    render (a read may start another)."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        while getattr(pilot.app, "indexing", False):
            await asyncio.sleep(0.01)
        await pilot.pause()


def open_person_thread(world: World) -> Scene:
    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        threads = pilot.app.query_one(ThreadList)
        threads.focus()
        assert threads.select_key(str(world.person_thread))
        await settle(pilot)

    return run


def refused_send(world: World) -> Scene:
    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pilot.app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("n")
        pilot.app.query_one("#draft", TextArea).text = TOO_LONG
        await pilot.press("ctrl+j")
        await settle(pilot)

    return run


def help_screen(world: World) -> Scene:
    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    return run


def agent_detail(world: World) -> Scene:
    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pilot.app.query_one(Roster).select_key(world.ids["api-server"])
        await pilot.press("i")
        await pilot.pause()

    return run


def unsent_draft_quit(world: World) -> Scene:
    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pilot.app.query_one(Roster).select_key(world.ids["test-runner"])
        await pilot.press("n", *"half a thought", "escape", "q")
        await pilot.pause()

    return run


def notification_log(world: World) -> Scene:
    """Two sends (one with the mesh's warning, its UTC time shown local), then ctrl+n."""

    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        roster = pilot.app.query_one(Roster)
        roster.select_key(world.ids["api-server"])
        await pilot.press("n", *"Deploy done?", "ctrl+j")
        await settle(pilot)
        await pilot.press("escape")
        roster.focus()
        roster.select_key(world.ids["old-prototype"])
        await pilot.press("n", *"Still there?", "ctrl+j")
        await settle(pilot)
        await pilot.press("escape")
        pilot.app.clear_notifications()  # toasts come and go on a timer: the log stays
        await pilot.press("ctrl+n")
        await pilot.pause()

    return run


def forget_confirm(world: World) -> Scene:
    """80x24: f in a stopped agent's details asks first."""

    async def run(pilot: Pilot[None]) -> None:
        await settle(pilot)
        pilot.app.query_one(Roster).select_key(world.ids["old-prototype"])
        await pilot.press("i", "f")
        await pilot.pause()

    return run


TOO_SMALL = (40, 12)

# name -> (terminal size, scene builder); the names are the screenshots' file names
SCENES: dict[str, tuple[tuple[int, int], Callable[[World], Scene]]] = {
    "main": (WIDE, lambda world: settle),
    "thread": (WIDE, open_person_thread),
    "composer-error": (WIDE, refused_send),
    "help": (WIDE, help_screen),
    "narrow": (NARROW, open_person_thread),
    "too-small": (TOO_SMALL, lambda world: settle),
    "agent-detail": (WIDE, agent_detail),
    "quit-unsent-draft": (NARROW, unsent_draft_quit),
    "notifications": (WIDE, notification_log),
    "forget-confirm": (NARROW, forget_confirm),
}


def _plain(svg: str) -> str:
    """The characters of an SVG fragment, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def screen_text(app: MeshApp) -> str:
    """What the terminal shows, as plain text (from the SVG screenshot)."""
    return _plain(app.export_screenshot())


def svg_rows(svg: str) -> list[str]:
    """The text rows of an SVG screenshot, top to bottom (a row is its `<text>`
    elements at one height)."""
    rows: dict[float, str] = {}
    for y, text in re.findall(r'<text[^>]*\by="([0-9.]+)"[^>]*>(.*?)</text>', svg, flags=re.DOTALL):
        rows[float(y)] = rows.get(float(y), "") + text
    return [_plain(rows[y]).rstrip() for y in sorted(rows)]

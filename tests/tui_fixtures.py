"""Fixed data for the TUI tests and snapshots: one mesh that shows every roster state.

Built with a FixedClock that is moved by hand, so every timestamp, age and sparkline is
the same on every run. The person ("alice") is registered here, and the app is told to
act as her session, so nothing depends on the login name.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mesh_core import FixedClock, Mesh

START = "2026-11-23T13:10:00.000Z"  # an hour before NOW: the sparklines' window
NOW = "2026-11-23T14:10:00.000Z"


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
        ids[name] = mesh.register(name, kind=kind, description=description).session_id
        return ids[name]

    me = register("alice", "a person at mesh-tui", kind="human")
    register("api-server", "REST API of the shop: orders and payments")
    register("web-frontend", "the storefront's React app")
    register("test-runner", "CI runner for every pull request")
    register("data-pipeline", "nightly import of the orders")
    register("old-prototype", "first try at the checkout flow")

    # An hour of talk between api-server and web-frontend, one exchange every 5 minutes.
    first = None
    for step in range(12):
        sent = mesh.send(
            ids["api-server"], "web-frontend",
            f"Build {step + 1}: /v2/orders now returns totals in cents.",
            priority="high" if step == 3 else "normal", new_thread=step == 0,
        )
        first = first or sent.message_id
        clock.advance(30)
        mesh.reply(ids["web-frontend"], sent.message_id, "Thanks, client types regenerated.")
        clock.advance(270)
    assert first is not None
    mesh.deregister(ids["old-prototype"])
    mesh.inbox(ids["web-frontend"])
    mesh.inbox(ids["api-server"])

    # test-runner is flooded: 55 unread requests from three senders, over 55 minutes.
    clock.set(START)
    senders = ["api-server", "web-frontend", "data-pipeline"]
    for index in range(55):
        clock.advance(59)
        mesh.send(ids[senders[index % 3]], "test-runner", f"Please re-run suite #{index + 1}.")

    # A thread for the person: alice asked, api-server answered urgently (unread).
    clock.set("2026-11-23T14:05:00.000Z")
    asked = mesh.send(me, "api-server", "Is the payments outage over?", new_thread=True)
    clock.advance(60)
    mesh.reply(ids["api-server"], asked.message_id,
               "Not yet: card payments fail for 1 in 20 orders.\nI will tell you when it is.",
               priority="urgent")

    # web-frontend hits the rate limit to test-runner: 10 messages in the last minute.
    clock.set("2026-11-23T14:09:10.000Z")
    for index in range(10):
        mesh.send(ids["web-frontend"], "test-runner", f"Flaky test {index + 1}, please rerun.")
        clock.advance(4)

    clock.set("2026-11-23T14:09:15.000Z")
    mesh.heartbeat(ids["data-pipeline"])  # its last beat: stale 47 s later
    clock.set(NOW)
    for name in ("alice", "api-server", "web-frontend", "test-runner"):
        mesh.heartbeat(ids[name])
    clock.advance(2)
    return World(mesh, clock, me, ids, asked.message_id, first)

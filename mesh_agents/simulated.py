"""Simulated agents, so a newcomer sees the mesh (and the TUI) work with nothing installed.

`mesh-tui --demo` runs them against a fresh temporary database; `mesh demo` against any
database. Every simulated session says so in its description and in its metadata
(`"simulated": true`, client `mesh-demo`), so nobody mistakes them for real agents.

What they do: an hour of history is written first (with a clock set back in time, so the
roster's activity sparklines and the thread list have something to show); then, live,
three agents heartbeat and chat, answer the person when messaged, one goes stale a few
seconds in, one's queue floods past the threshold, and one has already exited.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from mesh_core.clock import FixedClock
from mesh_core.errors import MeshError
from mesh_core.mesh import Mesh
from mesh_core.models import Message

log = logging.getLogger(__name__)

SIMULATED_META = {"simulated": True}
DEMO_CLIENT = "mesh-demo"
HISTORY_SECONDS = 55 * 60.0
STALE_AGE_AT_START = 25.0  # the stale agent's last beat: it turns stale ~5 s in
FLOOD_BACKLOG = 46  # unread at start; the live burst pushes it past the threshold


@dataclass(frozen=True)
class DemoAgent:
    name: str
    description: str
    role: str  # talker | stale | flooded | stopped


DEMO_AGENTS = (
    DemoAgent("api-server", "(simulated) REST API of the shop: orders and payments", "talker"),
    DemoAgent("web-frontend", "(simulated) the storefront's React app", "talker"),
    DemoAgent("docs-writer", "(simulated) keeps the docs in step with the API", "talker"),
    DemoAgent("data-pipeline", "(simulated) nightly import job; stops heartbeating", "stale"),
    DemoAgent("test-runner", "(simulated) CI runner, swamped with requests", "flooded"),
    DemoAgent("old-prototype", "(simulated) an agent that has already exited", "stopped"),
)

CHATTER = (
    "Deployed /v2/orders: `total` is now in cents, not euros.",
    "Can you regenerate the client types? The order schema changed.",
    "Done. The checkout page builds again.",
    "The refund endpoint returns 409 when the order is already refunded.",
    "Documented the 409 case and added an example request.",
    "Heads-up: I am renaming `customer_id` to `buyer_id` in the next release.",
    "Please keep the old name as an alias for one release.",
    "Agreed, alias kept until 2.3.",
    "Is the rate limit on /search per user or per token?",
    "Per token, 100 requests a minute.",
)
FLOOD_LINES = (
    "Please re-run the integration suite on main.",
    "Flaky: test_checkout_totals failed again, can you rerun?",
    "Run the contract tests against the new API build.",
)


class Demo:
    """The simulated agents on one mesh. `seed()` once, then `step()` (or `run()`)."""

    def __init__(self, mesh: Mesh, person: str | None = None, seed: int = 7) -> None:
        self.mesh = mesh
        self.person = person
        self.rng = random.Random(seed)
        self.sessions: dict[str, str] = {}  # name -> session id
        self._next_chat = 0.0
        self._next_beat = 0.0
        self._burst_at = 0.0
        self._pending: list[tuple[float, str, Message]] = []  # (due, replier, message)

    def roles(self, role: str) -> list[str]:
        return [a.name for a in DEMO_AGENTS if a.role == role]

    def seed(self) -> None:
        """Register the agents and write the last hour of their history."""
        end = self.mesh.clock.now()
        clock = FixedClock(end - timedelta(seconds=HISTORY_SECONDS))
        history = Mesh(self.mesh.path, config=self.mesh.config, clock=clock)
        try:
            for agent in DEMO_AGENTS:
                registered = history.register(
                    agent.name,
                    kind="agent",
                    client=DEMO_CLIENT,
                    description=agent.description,
                    metadata=SIMULATED_META,
                )
                self.sessions[agent.name] = registered.session_id
            talkers = self.roles("talker")
            flooded = self.sessions[self.roles("flooded")[0]]
            stale = self.sessions[self.roles("stale")[0]]
            stopped = self.sessions[self.roles("stopped")[0]]
            history.send(stale, talkers[0], "Import finished: 12,408 orders loaded.")
            floods = 0
            steps = 0
            start = clock.now()
            last = end - timedelta(seconds=STALE_AGE_AT_START + 5)
            while clock.now() < last:
                clock.advance(self.rng.uniform(20, 60))
                steps += 1
                self._exchange(history, talkers, new_thread=steps % 12 == 0)
                # spread the backlog over the hour, one sender at a time (rate limit)
                share = (clock.now() - start) / (last - start)
                for sender in talkers:
                    if floods < min(FLOOD_BACKLOG, round(FLOOD_BACKLOG * share)):
                        history.send(self.sessions[sender], flooded, self.rng.choice(FLOOD_LINES))
                        floods += 1
                for name in talkers + self.roles("flooded") + self.roles("stale"):
                    history.heartbeat(self.sessions[name])
                if steps == 20:
                    history.deregister(stopped)
            clock.set(end - timedelta(seconds=STALE_AGE_AT_START))
            history.heartbeat(stale)
            for name in talkers:
                history.inbox(self.sessions[name])  # talkers have read their mail
        finally:
            history.close()
        for name in talkers + self.roles("flooded"):
            self.mesh.heartbeat(self.sessions[name])
        self._greet()
        now = time.monotonic()
        self._next_chat = now + 3.0
        self._next_beat = now + self.mesh.config.heartbeat_interval
        self._burst_at = now + 8.0

    def _greet(self) -> None:
        if not self.person:
            return
        try:
            self.mesh.send(
                self.sessions["docs-writer"],
                self.person,
                "(simulated) Hi! I am a simulated agent of the demo. Press r to reply "
                "in this thread, or n on any agent in the roster to write to it.",
                priority="high",
                new_thread=True,
            )
        except MeshError as exc:  # no such person on this mesh: nobody to greet
            log.info("demo: not greeting %s: %s", self.person, exc)

    def _exchange(self, mesh: Mesh, talkers: list[str], new_thread: bool = False) -> None:
        """One talker writes to another, which answers in the same thread."""
        sender, recipient = self.rng.sample(talkers, 2)
        try:
            sent = mesh.send(
                self.sessions[sender],
                recipient,
                self.rng.choice(CHATTER),
                priority=self.rng.choice(("normal", "normal", "normal", "high", "low")),
                new_thread=new_thread,
            )
            mesh.reply(self.sessions[recipient], sent.message_id, self.rng.choice(CHATTER))
        except MeshError as exc:  # a rate limit in a busy minute: skip this exchange
            log.info("demo: %s", exc)

    def step(self, now: float | None = None) -> None:
        """One tick of the live simulation; call it about once a second. `now` is a
        `time.monotonic()` reading (tests pass their own)."""
        now = time.monotonic() if now is None else now
        talkers = self.roles("talker")
        if now >= self._next_beat:
            for name in talkers + self.roles("flooded"):
                self.mesh.heartbeat(self.sessions[name])
            self._next_beat = now + self.mesh.config.heartbeat_interval
        if self._burst_at and now >= self._burst_at:
            self._burst_at = 0.0
            self._flood_burst()
        for name in talkers:
            for message in self.mesh.inbox(self.sessions[name]):
                self._pending.append((now + self.rng.uniform(1.0, 2.5), name, message))
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, name, message in due:
            self._answer(name, message)
        if now >= self._next_chat:
            self._exchange(self.mesh, talkers)
            self._next_chat = now + self.rng.uniform(5.0, 12.0)

    def _flood_burst(self) -> None:
        """web-frontend fires requests at test-runner until the pair hits the rate limit."""
        sender = self.sessions["web-frontend"]
        for _ in range(self.mesh.rate_limit().limit):
            try:
                self.mesh.send(sender, "test-runner", self.rng.choice(FLOOD_LINES))
            except MeshError as exc:
                log.info("demo: %s", exc)
                break

    def _answer(self, name: str, message: Message) -> None:
        """Answer a person always, another agent sometimes."""
        sender = self.mesh.agent(message.sender_session_id)
        if sender.kind != "human" and self.rng.random() < 0.6:
            return
        first = next((ln for ln in message.content.splitlines() if ln.strip()), "")[:60]
        text = (
            f"(simulated) {name} here: got \u201c{first}\u201d. I would look into it now."
            if sender.kind == "human"
            else self.rng.choice(CHATTER)
        )
        try:
            self.mesh.reply(self.sessions[name], message.message_id, text)
        except MeshError as exc:
            log.info("demo: %s", exc)

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        """`step()` about once a second until `stop` is set or `duration` has passed;
        then the agents exit cleanly (marked stopped)."""
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    self.step()
                except MeshError as exc:
                    log.warning("demo: %s", exc)
                stop.wait(1.0)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Mark every simulated session stopped (a clean exit)."""
        for sid in self.sessions.values():
            try:
                self.mesh.deregister(sid)
            except MeshError as exc:
                log.info("demo: %s", exc)

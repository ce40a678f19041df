"""The figures that cross a process boundary while the mesh runs: delivery latency
(commit -> callback in another process), reply pickup, and idle CPU per participant.

Each is measured twice in the same run: with the file-system watch (what participants
do) and with the 50 ms `data_version` poll alone (what they did before, and still do
where the file system cannot be watched): the second is the reference.
"""

from __future__ import annotations

import json
import queue
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from mesh_core import Mesh
from mesh_core.watch import CommitWatch

from .report import Report, percentile

PROCS = Path(__file__).with_name("procs.py")
# The watching peer's safety net and inbox poll: far longer than a run waits for a
# message, so every message it gets came through the watch.
LONG_SAFETY = 120.0


class Child:
    """A process of procs.py whose JSON lines are read by a thread into a queue."""

    def __init__(self, role: str, db: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROCS), role, str(db), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.role = role
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = 60.0) -> dict[str, Any]:
        """The child's next line; queue.Empty after `timeout`, at once if it has died."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.lines.get(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if not self._reader.is_alive() and self.lines.empty():
                    raise queue.Empty(
                        f"{self.role} process ended (exit {self.proc.wait()}) without a report"
                    ) from None
                if time.monotonic() >= deadline:
                    raise

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close_input(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def finish(self, timeout: float = 60.0) -> None:
        self.close_input()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Delivery:
    """One delivery run's findings (seconds)."""

    latencies: list[float] = field(default_factory=list)
    pickups: list[float] = field(default_factory=list)
    round_trips: list[float] = field(default_factory=list)
    missing: int = 0
    watch: dict[str, Any] = field(default_factory=dict)  # the peer's last watch report


def delivery(work: Path, messages: int, echoes: int, watch: bool, rng: random.Random) -> Delivery:
    """Send `messages` to a participant in another process, each at a random moment, and
    time commit (our `send` returned) -> its `on_message`; then `echoes` round trips
    through `wait_for_reply`."""
    db = work / f"delivery-{'watch' if watch else 'poll'}.db"
    if not watch:
        # The reference: this process's wait_for_reply without the watch too (what a
        # folder that cannot be watched gets: the 50 ms data_version check).
        with mock.patch.object(CommitWatch, "start", lambda self: False):
            return _delivery(db, messages, echoes, watch, rng)
    return _delivery(db, messages, echoes, watch, rng)


def _delivery(db: Path, messages: int, echoes: int, watch: bool, rng: random.Random) -> Delivery:
    mesh = Mesh(db)
    # 10 messages per pair per minute: spread the load (deliveries and echoes, all to
    # one recipient within a minute or two) so no sender sends more than 8.
    count = max(25, -(-(messages + echoes) // 8))
    senders = [mesh.register(f"bench-sender-{n:02d}").session_id for n in range(count)]
    options = ["--safety-interval", str(LONG_SAFETY)] if watch else ["--poll-only"]
    peer = Child("peer", db, "--name", "bench-rx", *options)
    found = Delivery()
    try:
        found.watch = peer.next()  # ready: registered, its loop (and watch) running
        committed: dict[int, float] = {}
        for seq in range(messages):
            time.sleep(rng.uniform(0.01, 0.05))  # not in step with any interval
            mesh.send(senders[seq % len(senders)], "bench-rx", json.dumps({"seq": seq}))
            committed[seq] = time.time()
        replied_at: dict[int, float] = {}
        got_at: dict[int, float] = {}
        for number in range(echoes):
            seq = 100_000 + number
            time.sleep(rng.uniform(0.01, 0.05))
            asker = senders[number % len(senders)]
            start = time.time()
            sent = mesh.send(asker, "bench-rx", json.dumps({"seq": seq, "echo": 1}))
            reply = mesh.wait_for_reply(asker, sent.message_id, timeout=30)
            if reply is not None:
                got_at[seq] = time.time()
                found.round_trips.append(got_at[seq] - start)
        arrived: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while len(arrived) < messages or len(replied_at) < len(got_at):
            try:
                line = peer.next(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if "replied" in line:
                replied_at[line["seq"]] = line["replied"]
            elif "got" in line and line["seq"] < 100_000:
                arrived[line["seq"]] = line["got"]
        found.latencies = [arrived[s] - committed[s] for s in arrived]
        found.pickups = [got_at[s] - replied_at[s] for s in got_at if s in replied_at]
        found.missing = messages - len(arrived) + echoes - len(found.round_trips)
        peer.close_input()
        try:
            found.watch = peer.next(timeout=10)  # the `done` report
        except queue.Empty:
            pass
        return found
    finally:
        peer.finish()
        mesh.close()


def measure_delivery(
    report: Report, work: Path, messages: int, echoes: int, figures: tuple[str, ...]
) -> None:
    """figures: delivery p50, p99, pickup p50, p99, round trip p50."""
    rng = random.Random(7)
    watched = delivery(work, messages, echoes, True, rng)
    polled = delivery(work, messages, echoes, False, rng)
    for name, run in (("watch", watched), ("poll", polled)):
        if run.missing:
            report.broken.append(f"delivery ({name}): {run.missing} message(s) never arrived")
    events, reason = watched.watch.get("events", 0), watched.watch.get("reason")
    if not watched.watch.get("watching") or not events:
        report.broken.append(
            f"delivery: the watch never fired (watching={watched.watch.get('watching')}, "
            f"{events} events, reason: {reason}); the numbers are the fallback poll's"
        )
    ms = 1000.0
    p50, p99 = percentile(watched.latencies, 0.5) * ms, percentile(watched.latencies, 0.99) * ms
    r50, r99 = percentile(polled.latencies, 0.5) * ms, percentile(polled.latencies, 0.99) * ms
    report.add(figures[0], p50, r50, "ms", "≤ 5 ms", p50 <= 5)
    report.add(figures[1], p99, r99, "ms", "≤ 20 ms", p99 <= 20)
    w50, w99 = percentile(watched.pickups, 0.5) * ms, percentile(watched.pickups, 0.99) * ms
    q50, q99 = percentile(polled.pickups, 0.5) * ms, percentile(polled.pickups, 0.99) * ms
    report.add(figures[2], w50, q50, "ms", "≤ 5 ms", w50 <= 5)
    report.add(figures[3], w99, q99, "ms", "≤ 20 ms", w99 <= 20)
    trip, ref = (
        percentile(watched.round_trips, 0.5) * ms,
        percentile(polled.round_trips, 0.5) * ms,
    )
    report.add(figures[4], trip, ref, "ms", "(2 hops)", None)


def measure_idle(report: Report, work: Path, seconds: float, figure: str) -> None:
    """CPU per idle participant process over `seconds`: one watching, one polling every
    50 ms (the reference), at the same time on one shared database."""
    db = work / "idle.db"
    Mesh(db).close()
    common = ["--seconds", str(seconds)]
    watcher = Child("idle", db, "--name", "idle-watch", *common)
    poller = Child("idle", db, "--name", "idle-poll", "--poll-only", *common)
    results = {}
    for name, child in (("watch", watcher), ("poll", poller)):
        try:
            results[name] = child.next(timeout=seconds + 60)
        except queue.Empty as exc:
            report.broken.append(f"idle CPU ({name}): {exc}")
        child.finish()
    if not results.get("watch", {}).get("watching"):
        report.broken.append(f"idle CPU: the participant was not watching ({results})")

    def percent(name: str) -> float:
        result = results.get(name)
        return 100 * result["cpu"] / result["wall"] if result else float("nan")

    ours = percent("watch")
    report.add(
        f"{figure} ({seconds:g} s)",
        ours,
        percent("poll"),
        "%",
        "≤ 0.05 %",
        ours <= 0.05,
    )

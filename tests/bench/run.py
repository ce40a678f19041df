"""One command that measures every speed figure of the mesh on this machine.

    .venv/bin/python -m tests.bench.run            # the full run (a few minutes)
    .venv/bin/python tests/bench/run.py --quick    # small sizes: checks the benchmark works

Each row prints our value, the reference measured in the same run (or, for latency, the
original extension's 10 s poll as poll_interval/2 mean), their ratio, the target and PASS/MISS.
A MISS is a finding, not a failure: the exit status is 1 only when something was lost,
duplicated or refused (correctness), never for speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import the rest as `tests.bench` (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.bench"

from mesh_core import DEFAULT_CONFIG, Mesh, iso
from mesh_core.db import connect

from .dataset import PROBE_THREAD, Dataset, build

PROCS = Path(__file__).with_name("procs.py")
BLOCK = 50  # sends, then raw inserts, alternating (measure_throughput)
HEADER = ("figure", "ours", "reference", "ratio", "target", "result")

# Every row a run prints, in order (the quick test checks each one is there).
FIGURES = (
    "delivery latency p50",
    "delivery latency p99",
    "wait_for_reply pickup p50",
    "wait_for_reply pickup p99",
    "reply round trip p50",
    "idle participant CPU",
    "poll: inbox, empty",
    "poll: inbox, 5 waiting",
    "poll: unread counts",
    f"poll: thread fetch ({PROBE_THREAD} msgs)",
    "poll: send (rate limit, thread, depth)",
    "poll: roster (agents all)",
    "send rate, every rule",
    "8 writers: msgs/s",
    "8 writers: lost+duplicated+errors",
    "TUI refresh (views.snapshot)",
    "TUI thread view (views.thread_messages)",
    "TUI app refresh (read + render)",
    "TUI app render on the event loop",
    "mesh agents (table), big roster",
)


@dataclass(frozen=True)
class Sizes:
    big: int
    small: int
    sessions: int
    iterations: int
    latency_messages: int
    echo_messages: int
    idle_seconds: float
    watch_alternatives: tuple[float, ...]
    sends: int
    writers: int
    per_writer: int
    refreshes: int
    roster: int  # sessions for `mesh agents`


FULL = Sizes(
    big=1_000_000,
    small=1_000,
    sessions=1_000,
    iterations=200,
    latency_messages=200,
    echo_messages=50,
    idle_seconds=20.0,
    watch_alternatives=(0.02, 0.05, 0.1),
    sends=6_000,
    writers=8,
    per_writer=400,
    refreshes=15,
    roster=10_000,
)
QUICK = Sizes(
    big=5_000,
    small=1_000,
    sessions=200,
    iterations=10,
    latency_messages=20,
    echo_messages=5,
    idle_seconds=1.0,
    watch_alternatives=(),
    sends=200,
    writers=8,
    per_writer=20,
    refreshes=2,
    roster=1_000,
)


@dataclass(frozen=True)
class Row:
    figure: str
    ours: str
    reference: str
    ratio: str
    target: str
    passed: bool | None  # None: informational


class Report:
    """Collects rows; prints them as they come (a long run shows progress) and at the end."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.broken: list[str] = []  # correctness failures: exit 1

    def add(
        self,
        figure: str,
        ours: float,
        reference: float | None,
        unit: str,
        target: str,
        passed: bool | None,
        ratio: float | None = None,
    ) -> None:
        if ratio is None and reference:
            ratio = ours / reference
        row = Row(
            figure,
            _fmt(ours, unit),
            "—" if reference is None else _fmt(reference, unit),
            "—" if ratio is None else f"{ratio:.3g}x",
            target,
            passed,
        )
        self.rows.append(row)
        print(f"  {_line(row)}", flush=True)

    def table(self) -> str:
        lines = [_line(Row(*HEADER[:5], None), header=True), "-" * 104]
        lines += [_line(row) for row in self.rows]
        return "\n".join(lines)


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.3f} ms" if value < 1 else f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:g}{unit}"


def _line(row: Row, header: bool = False) -> str:
    result = "result" if header else {True: "PASS", False: "MISS", None: "info"}[row.passed]
    return (
        f"{row.figure:<40} {row.ours:>12} {row.reference:>12} {row.ratio:>8} "
        f"{row.target:>12}  {result}"
    )


def median_ms(
    action: Callable[[], object], times: int, setup: Callable[[], object] | None = None
) -> float:
    """Median wall time of `action` in ms over `times` runs (`setup` runs untimed first),
    after one untimed run that warms the caches."""
    if setup is not None:
        setup()
    action()
    samples = []
    for _ in range(times):
        if setup is not None:
            setup()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


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

    def finish(self, timeout: float = 60.0) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- 1. live delivery -------------------------------------------------------------------


def delivery(
    work: Path, sizes: Sizes, watch: float, echo: bool, rng: random.Random
) -> tuple[list[float], list[float], list[float], int]:
    """Latencies (s) of one-way delivery, reply pickup and round trip to a participant in
    another process; and how many messages never arrived."""
    db = work / f"delivery-{watch}.db"
    mesh = Mesh(db, config=DEFAULT_CONFIG.with_overrides(watch_interval=watch))
    # 10 messages per pair per minute: spread the load over enough senders.
    senders = [mesh.register(f"bench-sender-{n:02d}").session_id for n in range(25)]
    peer = Child("peer", db, "--name", "bench-rx", "--watch-interval", str(watch))
    try:
        peer.next()  # ready: registered, its loop is running
        for seq in range(sizes.latency_messages):
            time.sleep(rng.uniform(0.01, 0.05))  # not in step with the watch interval
            body = json.dumps({"seq": seq, "t": time.time()})
            mesh.send(senders[seq % len(senders)], "bench-rx", body)
        round_trips: list[float] = []
        replied_at: dict[int, float] = {}
        got_at: dict[int, float] = {}
        if echo:
            for number in range(sizes.echo_messages):
                seq = 100_000 + number
                time.sleep(rng.uniform(0.01, 0.05))
                asker = senders[number % len(senders)]
                start = time.time()
                sent = mesh.send(asker, "bench-rx", json.dumps({"seq": seq, "t": start, "echo": 1}))
                reply = mesh.wait_for_reply(asker, sent.message_id, timeout=30)
                if reply is not None:
                    got_at[seq] = time.time()
                    round_trips.append(got_at[seq] - start)
        latencies: list[float] = []
        deadline = time.monotonic() + 30
        while len(latencies) < sizes.latency_messages or len(replied_at) < len(got_at):
            try:
                line = peer.next(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if "replied" in line:
                replied_at[line["seq"]] = line["replied"]
            elif line["seq"] < 100_000:
                latencies.append(line["latency"])
        pickups = [got_at[s] - replied_at[s] for s in got_at if s in replied_at]
        missing = sizes.latency_messages - len(latencies)
        missing += (sizes.echo_messages - len(round_trips)) if echo else 0
        return latencies, pickups, round_trips, missing
    finally:
        peer.finish()
        mesh.close()


def measure_delivery(report: Report, work: Path, sizes: Sizes) -> None:
    rng = random.Random(7)
    poll = DEFAULT_CONFIG.poll_interval
    seed_p50, seed_p99 = poll / 2 * 1000, poll * 0.99 * 1000  # uniform over one interval
    watch = DEFAULT_CONFIG.watch_interval
    latencies, pickups, trips, missing = delivery(work, sizes, watch, True, rng)
    if missing:
        report.broken.append(f"delivery: {missing} message(s) never arrived")
    if not latencies or not pickups:
        report.broken.append("delivery: no latency measured")
        return
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    report.add(FIGURES[0], p50, seed_p50, "ms", "≤ 50 ms", p50 <= 50)
    report.add(FIGURES[1], p99, seed_p99, "ms", "≤ 250 ms", p99 <= 250)
    w50, w99 = percentile(pickups, 0.5) * 1000, percentile(pickups, 0.99) * 1000
    report.add(FIGURES[2], w50, seed_p50, "ms", "≤ 50 ms", w50 <= 50)
    report.add(FIGURES[3], w99, seed_p99, "ms", "≤ 250 ms", w99 <= 250)
    trip = percentile(trips, 0.5) * 1000
    report.add(FIGURES[4], trip, 2 * seed_p50, "ms", "(2 hops)", None)
    for other in sizes.watch_alternatives:
        if other == watch:
            continue
        lat, _, _, lost = delivery(work, sizes, other, False, rng)
        if lost or not lat:
            report.broken.append(f"delivery (watch {other} s): {lost} message(s) never arrived")
            continue
        report.add(
            f"  delivery p50 / p99, watch {other:g} s",
            percentile(lat, 0.5) * 1000,
            None,
            "ms",
            f"p99 {percentile(lat, 0.99) * 1000:.0f} ms",
            None,
        )


# -- 2. idle CPU ------------------------------------------------------------------------


def measure_idle(report: Report, work: Path, sizes: Sizes) -> None:
    """CPU of idle participant processes (all intervals at once, one shared database)."""
    db = work / "idle.db"
    Mesh(db).close()
    watch = DEFAULT_CONFIG.watch_interval
    intervals = [watch, *(w for w in sizes.watch_alternatives if w != watch)]
    children = {
        w: Child(
            "idle",
            db,
            "--name",
            f"idle-{w:g}",
            "--watch-interval",
            str(w),
            "--seconds",
            str(sizes.idle_seconds),
        )
        for w in intervals
    }
    for w, child in children.items():
        result = child.next(timeout=sizes.idle_seconds + 60)
        child.finish()
        percent = 100 * result["cpu"] / result["wall"]
        if w == watch:
            report.add(FIGURES[5], percent, None, "%", "< 1 %", percent < 1.0)
        else:
            report.add(f"  idle CPU, watch {w:g} s", percent, None, "%", "", None)


# -- 3. poll cost: 1k vs 1M -------------------------------------------------------------


def poll_costs(data: Dataset, sizes: Sizes) -> dict[str, float]:
    """Median ms of each hot operation on `data` (the same operations on both sizes)."""
    mesh = Mesh(data.path)
    feeder = connect(data.path, DEFAULT_CONFIG)
    try:
        me = data.active[0][0]
        mesh.inbox(me)  # start with an empty inbox
        senders, recipients = data.active[10:60], data.active[60:110]

        def feed() -> None:
            now = iso(mesh.clock.now())
            feeder.execute("BEGIN IMMEDIATE")
            feeder.executemany(
                "INSERT INTO agent_messages (sender_session_id, recipient_session_id, "
                "content, created_at) VALUES (?, ?, ?, ?)",
                [(senders[n][0], me, f"waiting {n}", now) for n in range(5)],
            )
            feeder.execute("COMMIT")

        sends = iter(range(10**9))

        def send() -> None:
            n = next(sends)
            sender = senders[n % len(senders)][0]
            recipient = recipients[(n // len(senders)) % len(recipients)][1]
            mesh.send(sender, recipient, f"benchmark send {n}")

        costs = {
            FIGURES[6]: median_ms(lambda: mesh.inbox(me), sizes.iterations),
            FIGURES[7]: median_ms(lambda: mesh.inbox(me), sizes.iterations, setup=feed),
            FIGURES[8]: median_ms(mesh.unread_counts, sizes.iterations),
            FIGURES[9]: median_ms(lambda: mesh.thread(data.thread_root), sizes.iterations),
            FIGURES[10]: median_ms(send, sizes.iterations),
            FIGURES[11]: median_ms(lambda: mesh.agents("all"), max(5, sizes.iterations // 10)),
        }
        thread = mesh.thread(data.thread_root)
        if len(thread) != PROBE_THREAD:
            raise AssertionError(f"probe thread has {len(thread)} messages, not {PROBE_THREAD}")
        return costs
    finally:
        feeder.close()
        mesh.close()


def measure_polls(report: Report, small: Dataset, big: Dataset, sizes: Sizes) -> None:
    ours, reference = poll_costs(big, sizes), poll_costs(small, sizes)
    for figure in FIGURES[6:12]:
        ratio = ours[figure] / reference[figure]
        report.add(figure, ours[figure], reference[figure], "ms", "≤ 2x", ratio <= 2.0)


# -- 4. send throughput vs raw insert ---------------------------------------------------


def measure_throughput(report: Report, work: Path, sizes: Sizes) -> float:
    """Mesh.send (every rule) against one-INSERT-per-transaction on the same file, in
    alternating blocks of BLOCK: both see the same file size, the same load from whatever
    else runs on the machine and a fair share of the WAL checkpoints, while a block is
    long enough that each connection's page cache stays warm (a commit by the other
    connection empties it)."""
    db = work / "throughput.db"
    mesh = Mesh(db)
    raw = connect(db, DEFAULT_CONFIG)  # same pragmas, autocommit: one INSERT, one commit
    try:
        senders = [mesh.register(f"tp-sender-{n:02d}").session_id for n in range(50)]
        recipients = [f"tp-rcpt-{n:02d}" for n in range(50)]
        recipient_ids = [mesh.register(name).session_id for name in recipients]
        now = iso(mesh.clock.now())
        send_time = raw_time = 0.0
        for block in range(0, sizes.sends, BLOCK):
            start = time.perf_counter()
            for n in range(block, min(block + BLOCK, sizes.sends)):
                # 2,500 (sender, recipient) pairs: the rate limit never trips
                mesh.send(senders[n % 50], recipients[(n // 50) % 50], f"throughput {n}")
            middle = time.perf_counter()
            for n in range(block, min(block + BLOCK, sizes.sends)):
                raw.execute(
                    "INSERT INTO agent_messages (sender_session_id, recipient_session_id, "
                    "content, priority, created_at) VALUES (?, ?, ?, 'normal', ?)",
                    ("raw-sender", recipient_ids[(n // 50) % 50], f"raw {n}", now),
                )
            send_time += middle - start
            raw_time += time.perf_counter() - middle
        ours, reference = sizes.sends / send_time, sizes.sends / raw_time
        report.add(FIGURES[12], ours, reference, "/s", "≥ 0.5x", ours / reference >= 0.5)
        return reference
    finally:
        raw.close()
        mesh.close()


# -- 5. eight writers at once -----------------------------------------------------------


def measure_writers(report: Report, work: Path, sizes: Sizes, raw_rate: float) -> None:
    db = work / "writers.db"
    mesh = Mesh(db)
    for n in range(100):
        mesh.register(f"rcpt-{n:03d}")
    writers = [
        Child(
            "writer",
            db,
            "--name",
            f"writer-{n}",
            "--count",
            str(sizes.per_writer),
            "--recipients",
            "100",
        )
        for n in range(sizes.writers)
    ]
    for child in writers:
        child.next()  # ready
    for child in writers:
        child.tell("go")
    results = [child.next(timeout=600) for child in writers]
    for child in writers:
        child.finish()
    rows = (
        mesh.connection()
        .execute(
            "SELECT content, count(*) FROM agent_messages WHERE content LIKE 'writer-%' "
            "GROUP BY content"
        )
        .fetchall()
    )
    mesh.close()
    stored = {row[0]: row[1] for row in rows}
    expected = {f"writer-{w}-{n}" for w in range(sizes.writers) for n in range(sizes.per_writer)}
    lost = len(expected - stored.keys())
    duplicated = sum(count - 1 for count in stored.values())
    errors = sum(r["error_count"] for r in results)
    sent = sum(r["sent"] for r in results)
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    report.add(FIGURES[13], sent / elapsed, raw_rate, "/s", "(info)", None)
    report.add(
        FIGURES[14], lost + duplicated + errors, None, "", "0", lost + duplicated + errors == 0
    )
    if lost or duplicated or errors:
        samples = [e for r in results for e in r["errors"]][:3]
        report.broken.append(
            f"8 writers: {lost} lost, {duplicated} duplicated, {errors} errors {samples}"
        )


# -- 6. TUI refresh ---------------------------------------------------------------------


def measure_tui(report: Report, small: Dataset, big: Dataset, sizes: Sizes) -> None:
    """The monitor's read-only refresh (mesh_core.views) on 1,000 agents, then the whole
    refresh in the headless app (tests/bench/tui_refresh.py, the TUI's own benchmark)."""
    import asyncio

    from mesh_core import views

    from .tui_refresh import app_numbers

    def cost(data: Dataset) -> tuple[float, float, dict[str, float]]:
        mesh = Mesh(data.path)
        try:
            me = data.active[1][0]
            # As the app does: one Activity kept across refreshes, so a refresh reads
            # only what changed (the first one, which counts the whole hour, is the
            # warm-up here; tests/bench/tui_refresh.py reports it on its own).
            activity = views.Activity()
            views.snapshot(mesh, me=me, activity=activity)
            refresh = median_ms(
                lambda: views.snapshot(mesh, me=me, activity=activity), sizes.refreshes
            )
            thread = median_ms(
                lambda: views.thread_messages(mesh, data.thread_root), sizes.iterations
            )
            app = asyncio.run(asyncio.wait_for(app_numbers(mesh, me, sizes.refreshes), 300))
            return refresh, thread, app
        finally:
            mesh.close()

    (big_read, big_thread, big_app), (small_read, small_thread, small_app) = (
        cost(big),
        cost(small),
    )
    report.add(FIGURES[15], big_read, small_read, "ms", "≤ 100 ms", big_read <= 100)
    report.add(FIGURES[16], big_thread, small_thread, "ms", "≤ 100 ms", big_thread <= 100)
    report.add(
        FIGURES[17],
        big_app["refresh"],
        small_app["refresh"],
        "ms",
        "≤ 100 ms",
        big_app["refresh"] <= 100,
    )
    report.add(FIGURES[18], big_app["render"], small_app["render"], "ms", "(info)", None)


# -- 7. the roster on the command line ----------------------------------------------------


def measure_roster(report: Report, work: Path, sizes: Sizes) -> None:
    """`mesh agents --status all` (the table) on a roster of `sizes.roster` sessions, a
    real process into a pipe; the reference is `--json` in the same run, the same
    process reading the same rows with no table to draw."""
    path = work / "roster.db"
    Mesh(path).close()
    now = iso(datetime.now(UTC))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO agent_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f"sid-{i:06d}",
                    f"agent-{i}",
                    f"What agent {i} works on",
                    f"/home/user/src/agent-{i}",
                    f"/home/user/src/agent-{i}",
                    "stopped" if i % 3 == 0 else "active",
                    now,
                    now,
                    json.dumps({"kind": "agent", "client": "mesh-mcp"}),
                )
                for i in range(sizes.roster)
            ],
        )
    conn.close()
    env = {**os.environ, "COLUMNS": "120"}

    def run(*extra: str) -> float:
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mesh_cli", "--db", str(path), "agents", "--status", "all"]
            + list(extra),
            stdout=subprocess.DEVNULL,
            env=env,
            check=True,
        )
        return time.perf_counter() - began

    table = statistics.median(run() for _ in range(3))
    plain = statistics.median(run("--json") for _ in range(3))
    report.add(
        f"{FIGURES[19]} ({sizes.roster:,})",
        table * 1000,
        plain * 1000,
        "ms",
        "≤ 1000 ms",
        table <= 1.0,
    )


# -- the run ----------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure every speed figure of the mesh.")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks it works")
    parser.add_argument(
        "--big",
        type=int,
        metavar="N",
        help="messages in the large database (default 1,000,000; e.g. 100000)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.big is not None:
        if args.big < sizes.small:
            parser.error(f"--big must be at least {sizes.small}")
        sizes = replace(sizes, big=args.big)
    began = time.monotonic()
    print(f"agent-mesh benchmark ({'quick' if args.quick else 'full'}): {machine()}")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        work = Path(tmp)
        start = time.monotonic()
        small = build(work / "small.db", sizes.small, sizes.sessions)
        big = build(work / "big.db", sizes.big, sizes.sessions)
        print(
            f"built {sizes.small:,} and {sizes.big:,} messages, {sizes.sessions:,} sessions "
            f"each, {small.unread} unread, in {time.monotonic() - start:.1f} s "
            f"({big.path.stat().st_size / 1e6:.0f} MB)",
            flush=True,
        )
        measure_delivery(report, work, sizes)
        measure_idle(report, work, sizes)
        measure_polls(report, small, big, sizes)
        raw_rate = measure_throughput(report, work, sizes)
        measure_writers(report, work, sizes, raw_rate)
        measure_tui(report, small, big, sizes)
        measure_roster(report, work, sizes)
    print()
    print(report.table())
    misses = sum(row.passed is False for row in report.rows)
    print(
        f"\n{sum(row.passed is True for row in report.rows)} PASS, {misses} MISS "
        f"in {time.monotonic() - began:.0f} s"
    )
    for problem in report.broken:
        print(f"BROKEN: {problem}")
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main())

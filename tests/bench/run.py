"""One command that measures every speed figure of the mesh on this machine.

    .venv/bin/python -m tests.bench.run            # the full run (several minutes)
    .venv/bin/python tests/bench/run.py --quick    # small sizes: checks the benchmark works

Each row prints our value, the reference measured in the same run, their ratio, the
target and PASS/MISS. A MISS is a finding, not a failure: the exit status is 1 only when
the benchmark is broken — a figure missing, the watch never firing, something lost,
duplicated or refused — never for speed. The parts: live.py (delivery, idle CPU),
startup.py (`mesh send`, `mesh mcp`), this file (polls, send rate, writers, the TUI).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the rest as `tests.bench` (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.bench"

from mesh_core import DEFAULT_CONFIG, Mesh, iso
from mesh_core.db import connect

from . import live, startup
from .dataset import PROBE_THREAD, Dataset, build
from .live import Child
from .report import Probe, Report, median_ms, paired_median_ms, replace_readme_block

BLOCK = 50  # sends, then raw inserts, alternating (measure_throughput)

# Every row a run prints, in order (the quick test checks each one is there). The first
# eleven are the Targets table of issue 13.
FIGURES = (
    "delivery p50 (commit → callback)",
    "delivery p99 (commit → callback)",
    "wait_for_reply pickup p50",
    "wait_for_reply pickup p99",
    "reply round trip p50",
    "idle participant CPU",
    "mesh send wall (median)",
    "mesh mcp: exec → registered",
    "mesh mcp: exec → initialize answered",
    "mesh mcp: exec → tools/list answered",
    "idle mesh mcp RSS",
    "poll: inbox, empty",
    "poll: inbox, 5 waiting",
    "poll: unread counts",
    f"poll: thread fetch ({PROBE_THREAD} msgs)",
    "poll: send (rate limit, thread, depth)",
    "poll: roster (agents all)",
    "send rate vs one-row INSERT",
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
    command_runs: int
    mcp_runs: int
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
    echo_messages=200,
    idle_seconds=60.0,
    command_runs=10,
    mcp_runs=11,
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
    idle_seconds=2.0,
    command_runs=3,
    mcp_runs=1,
    sends=200,
    writers=8,
    per_writer=20,
    refreshes=2,
    roster=1_000,
)


# -- poll cost: 1k vs 1M ----------------------------------------------------------------


class PollProbes:
    """The hot operations on one dataset, ready to time (the same ones on both sizes)."""

    def __init__(self, data: Dataset, sizes: Sizes) -> None:
        self.data = data
        self.mesh = Mesh(data.path)
        self.feeder = connect(data.path, DEFAULT_CONFIG)
        self.me = data.active[0][0]
        self.mesh.inbox(self.me)  # start with an empty inbox
        self.senders, self.recipients = data.active[10:60], data.active[60:110]
        self.sends = iter(range(10**9))
        me, mesh = self.me, self.mesh
        self.probes: dict[str, tuple[Probe, int]] = {
            FIGURES[11]: ((lambda: mesh.inbox(me), None), sizes.iterations),
            FIGURES[12]: ((lambda: mesh.inbox(me), self.feed), sizes.iterations),
            FIGURES[13]: ((mesh.unread_counts, None), sizes.iterations),
            FIGURES[14]: ((lambda: mesh.thread(data.thread_root), None), sizes.iterations),
            FIGURES[15]: ((self.send, None), sizes.iterations),
            FIGURES[16]: ((lambda: mesh.agents("all"), None), max(5, sizes.iterations // 10)),
        }

    def feed(self) -> None:
        """Five unread messages for the inbox to take, written by another connection."""
        now = iso(self.mesh.clock.now())
        self.feeder.execute("BEGIN IMMEDIATE")
        self.feeder.executemany(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, "
            "content, created_at) VALUES (?, ?, ?, ?)",
            [(self.senders[n][0], self.me, f"waiting {n}", now) for n in range(5)],
        )
        self.feeder.execute("COMMIT")

    def send(self) -> None:
        n = next(self.sends)
        sender = self.senders[n % len(self.senders)][0]
        recipient = self.recipients[(n // len(self.senders)) % len(self.recipients)][1]
        self.mesh.send(sender, recipient, f"benchmark send {n}")

    def check(self) -> None:
        thread = self.mesh.thread(self.data.thread_root)
        if len(thread) != PROBE_THREAD:
            raise AssertionError(f"probe thread has {len(thread)} messages, not {PROBE_THREAD}")

    def close(self) -> None:
        self.feeder.close()
        self.mesh.close()


def measure_polls(report: Report, small: Dataset, big: Dataset, sizes: Sizes) -> None:
    """Each operation on the 1M database and on the 1k one, taking turns call by call."""
    ours, reference = PollProbes(big, sizes), PollProbes(small, sizes)
    try:
        for figure in FIGURES[11:17]:
            (probe, times), (reference_probe, _) = ours.probes[figure], reference.probes[figure]
            mine, theirs = paired_median_ms([probe, reference_probe], times)
            report.add(figure, mine, theirs, "ms", "≤ 2x", mine / theirs <= 2.0)
        ours.check()
        reference.check()
    finally:
        ours.close()
        reference.close()


# -- send throughput vs raw insert -----------------------------------------------------


def measure_throughput(report: Report, work: Path, sizes: Sizes) -> float:
    """Mesh.send (every rule) against one INSERT per transaction (autocommit, the same
    pragmas) into the same indexed table, each on its own file, back to back in
    alternating blocks of BLOCK: both see the same load from whatever else runs on the
    machine, and neither connection's page cache is emptied by the other's commits."""
    mesh, reference = Mesh(work / "throughput-send.db"), Mesh(work / "throughput-raw.db")
    raw = connect(reference.path, DEFAULT_CONFIG)
    try:
        senders = [mesh.register(f"tp-sender-{n:02d}").session_id for n in range(50)]
        recipients = [f"tp-rcpt-{n:02d}" for n in range(50)]
        for name in recipients:
            mesh.register(name)
        # The same sessions in the reference file: its rows look like the sends' rows.
        raw_senders = [reference.register(f"tp-sender-{n:02d}").session_id for n in range(50)]
        raw_ids = [reference.register(name).session_id for name in recipients]
        now = iso(mesh.clock.now())
        send_time = raw_time = 0.0
        for block in range(0, sizes.sends, BLOCK):
            numbers = range(block, min(block + BLOCK, sizes.sends))
            start = time.perf_counter()
            for n in numbers:
                # 2,500 (sender, recipient) pairs: the rate limit never trips
                mesh.send(senders[n % 50], recipients[(n // 50) % 50], f"throughput {n}")
            middle = time.perf_counter()
            for n in numbers:
                raw.execute(
                    "INSERT INTO agent_messages (sender_session_id, recipient_session_id, "
                    "content, priority, created_at) VALUES (?, ?, ?, 'normal', ?)",
                    (raw_senders[n % 50], raw_ids[(n // 50) % 50], f"throughput {n}", now),
                )
            send_time += middle - start
            raw_time += time.perf_counter() - middle
        ours, rate = sizes.sends / send_time, sizes.sends / raw_time
        report.add(FIGURES[17], ours, rate, "/s", "≥ 0.6x", ours / rate >= 0.6)
        return rate
    finally:
        raw.close()
        reference.close()
        mesh.close()


# -- eight writers at once --------------------------------------------------------------


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
    report.add(FIGURES[18], sent / elapsed, raw_rate, "/s", "(info)", None)
    report.add(
        FIGURES[19], lost + duplicated + errors, None, "", "0", lost + duplicated + errors == 0
    )
    if lost or duplicated or errors:
        samples = [e for r in results for e in r["errors"]][:3]
        report.broken.append(
            f"8 writers: {lost} lost, {duplicated} duplicated, {errors} errors {samples}"
        )


# -- TUI refresh ------------------------------------------------------------------------


def measure_tui(report: Report, small: Dataset, big: Dataset, sizes: Sizes) -> None:
    """The monitor's read-only refresh (mesh_core.views) on 1,000 agents, then the whole
    refresh in the headless app (tests/bench/tui_refresh.py, the TUI's own benchmark)."""
    import asyncio

    from mesh_core import views
    from mesh_core.rows import AgentMemo

    from .tui_refresh import app_numbers

    def cost(data: Dataset) -> tuple[float, float, dict[str, float]]:
        mesh = Mesh(data.path)
        try:
            me = data.active[1][0]
            # As the app does: one Activity and one AgentMemo kept across refreshes, so a
            # refresh reads only what changed and decodes only changed session rows (the first one, which counts the whole hour, is the
            # warm-up here; tests/bench/tui_refresh.py reports it on its own).
            activity, memo = views.Activity(), AgentMemo()
            views.snapshot(mesh, me=me, activity=activity, memo=memo)
            refresh = median_ms(
                lambda: views.snapshot(mesh, me=me, activity=activity, memo=memo),
                sizes.refreshes,
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
    report.add(FIGURES[20], big_read, small_read, "ms", "≤ 100 ms", big_read <= 100)
    report.add(FIGURES[21], big_thread, small_thread, "ms", "≤ 100 ms", big_thread <= 100)
    report.add(
        FIGURES[22],
        big_app["refresh"],
        small_app["refresh"],
        "ms",
        "≤ 50 ms",  # issue 12: a whole refresh at 1,000 agents / 1M messages
        big_app["refresh"] <= 50,
    )
    report.add(FIGURES[23], big_app["render"], small_app["render"], "ms", "(info)", None)


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
    env = {**startup.installed_env(work), "COLUMNS": "120"}

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

    run()  # untimed: warms the caches (bytecode, the file)
    table = statistics.median(run() for _ in range(3))
    plain = statistics.median(run("--json") for _ in range(3))
    report.add(
        FIGURES[24],
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
    parser.add_argument(
        "--readme",
        type=Path,
        metavar="PATH",
        help="write this run's table into PATH between its bench-table markers",
    )
    args = parser.parse_args(argv)
    if args.readme is not None and not args.readme.is_file():
        parser.error(f"--readme: {args.readme} is not a file")
    sizes = QUICK if args.quick else FULL
    if args.big is not None:
        if args.big < sizes.small:
            parser.error(f"--big must be at least {sizes.small}")
        sizes = replace(sizes, big=args.big)
    began = time.monotonic()
    heading = f"agent-mesh benchmark ({'quick' if args.quick else 'full'}): {machine()}"
    print(heading)
    load_before = os.getloadavg()[0]
    report = Report()
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        work = Path(tmp)
        start = time.monotonic()
        small = build(work / "small.db", sizes.small, sizes.sessions)
        big = build(work / "big.db", sizes.big, sizes.sessions)
        built = (
            f"built {sizes.small:,} and {sizes.big:,} messages, {sizes.sessions:,} sessions "
            f"each, {small.unread} unread, in {time.monotonic() - start:.1f} s "
            f"({big.path.stat().st_size / 1e6:.0f} MB)"
        )
        print(built, flush=True)
        live.measure_delivery(
            report, work, sizes.latency_messages, sizes.echo_messages, FIGURES[0:5]
        )
        live.measure_idle(report, work, sizes.idle_seconds, FIGURES[5])
        result = startup.measure(sizes.command_runs, sizes.mcp_runs)
        timed_from = f"commands timed from {result.how}"
        print(timed_from, flush=True)
        startup.add_rows(report, result, FIGURES[6:11])
        measure_polls(report, small, big, sizes)
        raw_rate = measure_throughput(report, work, sizes)
        measure_writers(report, work, sizes, raw_rate)
        measure_tui(report, small, big, sizes)
        measure_roster(report, work, sizes)
    print()
    print(report.table())
    misses = sum(row.passed is False for row in report.rows)
    summary = (
        f"{sum(row.passed is True for row in report.rows)} PASS, {misses} MISS "
        f"in {time.monotonic() - began:.0f} s; load average {load_before:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end"
    )
    print(f"\n{summary}")
    for problem in report.broken:
        print(f"BROKEN: {problem}")
    if args.readme is not None and not report.broken:
        lines = [heading, built, timed_from, report.table(), "", summary]
        readme = args.readme.read_text(encoding="utf-8")
        args.readme.write_text(replace_readme_block(readme, lines), encoding="utf-8")
        print(f"wrote the table into {args.readme}")
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main())

"""How long mesh-tui takes to show its first screen and to refresh, as the mesh grows.

    .venv/bin/python tests/bench/tui_refresh.py            # 200/20k and 1,000/1M
    .venv/bin/python tests/bench/tui_refresh.py --quick    # 200/2k only (CI: it works)
    .venv/bin/python tests/bench/tui_refresh.py --tmux     # also a real terminal start-up

For each size it prints: the read a refresh does off the event loop (`views.snapshot`,
roster + newest threads), the thread fetch, the part that runs on the event loop (updating
the tables: what could delay a key press), one whole refresh in the headless app, the
time from constructing the app to its first screen, and — the reference — one full scan
of the messages table, i.e. what a refresh that did not use the indexes would pay. It
also lists the query plan of every statement a refresh runs, flagging full table scans.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the rest as `tests.bench` (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.bench"

from mesh_core import Mesh, views
from mesh_core.rows import AgentMemo
from mesh_tui.app import MeshApp
from mesh_tui.messages import SnapshotLoaded
from mesh_tui.search import SearchIndex

from .dataset import Dataset, build

ROOT = Path(__file__).resolve().parents[2]


def timed(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, max) in milliseconds over `runs` calls, after one warm-up call."""
    action()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def query_plans(mesh: Mesh, me: str, agent: str) -> list[tuple[str, str, bool]]:
    """Every statement shape one refresh runs, its plan, and whether it reads the whole
    messages table (a SCAN without an index that no LIMIT stops)."""
    statements: list[str] = []
    conn = mesh.connection()
    conn.set_trace_callback(statements.append)
    try:
        views.snapshot(mesh, me)
        views.snapshot(mesh, me, agent)
    finally:
        conn.set_trace_callback(None)
    plans: dict[str, tuple[str, str, bool]] = {}
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        shape = re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", " ".join(sql.split()))
        shape = re.sub(r"\?(, ?\?)+", "?…", shape)
        if shape not in plans:
            plan = "; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            full = bool(re.search(r"SCAN agent_messages(?! USING)", plan)) and "LIMIT" not in shape
            plans[shape] = (shape[:110], plan, full)
    return list(plans.values())


async def app_numbers(mesh: Mesh, me: str, runs: int) -> dict[str, float]:
    """First screen and whole refreshes in the headless app (120x36). `render` is the
    time the event loop spends handling a fresh snapshot (tables updated): the only
    part of a refresh that could delay a key press."""
    loaded: asyncio.Event = asyncio.Event()
    handled: list[float] = []

    class Timed(MeshApp):
        def on_snapshot_loaded(self, event: SnapshotLoaded) -> None:
            began = time.perf_counter()
            super().on_snapshot_loaded(event)
            # Textual calls the handler of every class in the MRO: without this the
            # base class would handle each snapshot a second time, as the app never does
            event.prevent_default()
            handled.append((time.perf_counter() - began) * 1000)
            loaded.set()

    start = time.perf_counter()
    app = Timed(mesh, live=False, session_id=me, name="bench")
    async with app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(loaded.wait(), 120)
        await pilot.pause()
        first = (time.perf_counter() - start) * 1000
        # The search index's first build (every message, once per person, then kept in
        # a file) runs in a worker at start; refreshes are timed after it, as they run
        # every day after the first.
        while any(w.group == "index" and not w.is_finished for w in app.workers):
            await asyncio.sleep(0.1)
        handled.clear()
        refreshes = []
        for _ in range(runs):
            loaded.clear()
            await asyncio.sleep(0.05)  # let ages move on: each refresh changes cells
            began = time.perf_counter()
            app.request_refresh()
            await asyncio.wait_for(loaded.wait(), 120)
            refreshes.append((time.perf_counter() - began) * 1000)
    return {
        "first": first,
        "refresh": statistics.median(refreshes),
        "refresh_max": max(refreshes),
        "render": statistics.median(handled),
    }


def search_numbers(mesh: Mesh, runs: int) -> dict[str, float]:
    """The TUI's own text index: building it from nothing, one search, and the search
    done the plain way (LIKE over every message) for reference."""
    index = SearchIndex(None)
    began = time.perf_counter()
    while index.catch_up(mesh):
        pass
    build_ms = (time.perf_counter() - began) * 1000
    row = (
        mesh.connection()
        .execute("SELECT content FROM agent_messages ORDER BY message_id DESC LIMIT 1")
        .fetchone()
    )
    words = [w for w in str(row[0]).split() if len(w) >= 4] or ["message"]
    phrase = words[len(words) // 2]
    query, _ = timed(lambda: index.threads_matching(phrase), runs)
    like, _ = timed(
        lambda: (
            mesh.connection()
            .execute(
                "SELECT DISTINCT coalesce(original_message_id, message_id) FROM agent_messages "
                "WHERE content LIKE ? ORDER BY 1 DESC LIMIT 100",
                (f"%{phrase}%",),
            )
            .fetchall()
        ),
        max(3, runs // 4),
    )
    index.close()
    return {"build": build_ms, "query": query, "like": like}


def tmux_first_screen(db: Path) -> float | None:
    """A real terminal: start `mesh-tui` in tmux, time until the roster shows an agent."""
    if shutil.which("tmux") is None:
        return None
    session = f"tui-bench-{int(time.time() * 1000) % 100000}"
    command = f"{ROOT / '.venv/bin/mesh-tui'} --db {db} --name bench-person"
    start = time.perf_counter()
    subprocess.run(
        ["tmux", "new", "-d", "-s", session, "-x", "120", "-y", "36", command], check=True
    )
    try:
        while time.perf_counter() - start < 30:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                check=False,
                capture_output=True,
                text=True,
            ).stdout
            if "agent-0" in screen and "refreshed" in screen:
                return (time.perf_counter() - start) * 1000
            time.sleep(0.01)
        return None
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=False)
        time.sleep(0.5)
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)


def measure(folder: Path, agents: int, messages: int, runs: int, tmux: bool) -> None:
    began = time.perf_counter()
    data: Dataset = build(folder / f"tui-{agents}-{messages}.db", messages, sessions=agents)
    print(
        f"\n== {agents:,} agents, {messages:,} messages "
        f"(built in {time.perf_counter() - began:.1f} s) =="
    )
    mesh = Mesh(data.path)
    try:
        me, agent = data.active[0][0], data.active[1][0]
        # as the app keeps them: warm after the first refresh
        activity, memo = views.Activity(), AgentMemo()
        rows = [
            (
                "snapshot: roster + newest 100 threads",
                timed(lambda: views.snapshot(mesh, me, activity=activity, memo=memo), runs),
            ),
            (
                "snapshot: one agent's threads",
                timed(lambda: views.snapshot(mesh, me, agent, activity=activity, memo=memo), runs),
            ),
            (
                "snapshot, cold (first refresh: the whole hour)",
                timed(lambda: views.snapshot(mesh, me), max(3, runs // 4)),
            ),
            (
                "thread fetch (newest 200 messages)",
                timed(lambda: views.thread_messages(mesh, data.thread_root), runs),
            ),
            (
                "reference: one full scan of agent_messages",
                timed(
                    lambda: (
                        mesh.connection()
                        .execute("SELECT count(*), max(length(content)) FROM agent_messages")
                        .fetchone()
                    ),
                    max(3, runs // 4),
                ),
            ),
        ]
        search = search_numbers(mesh, runs)
        app = asyncio.run(app_numbers(mesh, me, runs))
        print(f"{'figure':48} {'median ms':>10} {'max ms':>10}")
        for label, (median, worst) in rows:
            print(f"{label:48} {median:10.2f} {worst:10.2f}")
        print(
            f"{'app: one whole refresh (read + render)':48} {app['refresh']:10.2f} "
            f"{app['refresh_max']:10.2f}"
        )
        print(f"{'app: on the event loop (fresh snapshot shown)':48} {app['render']:10.2f}")
        print(f"{'app: constructed -> first screen (headless)':48} {app['first']:10.2f}")
        print(
            f"{'search: index every message (once, in the background)':48} {search['build']:10.0f}"
        )
        print(f"{'search: threads whose text has a phrase':48} {search['query']:10.2f}")
        print(f"{'reference: the same search as LIKE on the mesh':48} {search['like']:10.2f}")
        print(f"ratio LIKE / indexed search: {search['like'] / search['query']:.1f}x")
        scan = rows[4][1][0]
        print(f"ratio full scan / snapshot: {scan / rows[0][1][0]:.1f}x")
        if tmux:
            real = tmux_first_screen(data.path)
            shown = f"{real:.0f} ms" if real is not None else "not seen within 30 s"
            print(f"real terminal (tmux), process start -> roster shown: {shown}")
        print("query plans of one refresh:")
        for sql, plan, full in query_plans(mesh, me, agent):
            print(f"  {'FULL SCAN ' if full else ''}{sql}\n      -> {plan}")
    finally:
        mesh.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (CI)")
    parser.add_argument("--tmux", action="store_true", help="also time a real terminal start")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    sizes = [(200, 2_000)] if args.quick else [(200, 20_000), (1_000, 1_000_000)]
    with tempfile.TemporaryDirectory() as tmp:
        for agents, messages in sizes:
            measure(Path(tmp), agents, messages, 5 if args.quick else args.runs, args.tmux)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long mesh-tui takes to show its first screen and to refresh, as the mesh grows.

    .venv/bin/python tests/bench/tui_refresh.py            # 200/20k and 1,000/1M
    .venv/bin/python tests/bench/tui_refresh.py --quick    # 200/2k only (CI: it works)
    .venv/bin/python tests/bench/tui_refresh.py --tmux     # also a real terminal start-up

For each size it prints: the read a refresh does off the event loop (`views.snapshot`,
roster + newest threads), the thread fetch, the part that runs on the event loop (updating
the tables: what could delay a key press), one whole refresh in the headless app, the
time from constructing the app to its first painted frame, a key's way to the screen
while the search index is first built and after, and — the reference — one full scan
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

from textual import events

if __package__ in (None, ""):  # run as a script: import the rest as `tests.bench` (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.bench"

from mesh_core import Mesh, views
from mesh_core.rows import AgentMemo
from mesh_tui.app import MeshApp
from mesh_tui.messages import SnapshotLoaded
from mesh_tui.search import SearchIndex
from mesh_tui.widgets.roster import Roster

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


async def key_to_frame(app: MeshApp, key: str) -> float:
    """Milliseconds from a key reaching the app (as the terminal driver hands it over)
    to the first frame painted after the roster's cursor moved."""
    roster = app.query_one(Roster)
    before = roster.cursor_row
    event = events.Key(key, key)
    event.set_sender(app)
    began = time.perf_counter()
    assert app._driver is not None
    app._driver.send_message(event)
    deadline = began + 30
    while roster.cursor_row == before:  # a cursor that cannot move would wait forever
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the roster's cursor did not move on {key!r} in 30 s")
        await asyncio.sleep(0.0005)
    painted = asyncio.Event()
    app.call_after_refresh(painted.set)
    await painted.wait()
    return (time.perf_counter() - began) * 1000


class Stalls:
    """The event loop's worst lateness: a probe that asks to wake every 5 ms and records
    how late it woke (what a key arriving at that moment would have waited)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, (time.perf_counter() - began) * 1000 - 5)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._probe())

    def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
        return self.worst


async def keys_while(app: MeshApp, going: Callable[[], bool], most: int) -> list[float]:
    """Key-to-frame times of j and k, taken in turn every 20 ms while `going()`."""
    samples: list[float] = []
    while going() and len(samples) < most:
        samples.append(await key_to_frame(app, "j" if len(samples) % 2 == 0 else "k"))
        await asyncio.sleep(0.02)
    return samples


async def app_numbers(mesh: Mesh, me: str, runs: int) -> dict[str, float]:
    """First screen, keys, and whole refreshes in the headless app (120x36).

    `first` is construction to the first frame painted with the mesh on it. Keys are
    timed twice: while the search index's first build runs (it starts after the first
    screen and, on a big mesh, takes a while) and after it. `render` is the time the
    event loop spends handling a fresh snapshot (tables updated): the only part of a
    refresh that could delay a key press. Figures that had no sample are NaN."""
    loaded: asyncio.Event = asyncio.Event()
    painted: asyncio.Event = asyncio.Event()
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
            if not painted.is_set():
                self.call_after_refresh(painted.set)

    nan = float("nan")
    start = time.perf_counter()
    app = Timed(mesh, live=False, session_id=me, name="bench", search=SearchIndex(None))
    stalls = Stalls()
    async with app.run_test(size=(120, 36)):
        await asyncio.wait_for(painted.wait(), 120)
        first = (time.perf_counter() - start) * 1000
        build_began = time.perf_counter()
        stalls.start()
        for _ in range(100):  # the index thread starts right after the first frame
            if app.indexing:
                break
            await asyncio.sleep(0.01)
        during = await keys_while(app, lambda: app.indexing, 5000)
        while app.indexing:
            await asyncio.sleep(0.05)
        stall_during = stalls.stop()
        build = (time.perf_counter() - build_began) * 1000
        stalls.start()
        after = await keys_while(app, lambda: True, max(runs, 20))
        stall_after = stalls.stop()
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
        "index_build": build,
        "key_during": statistics.median(during) if during else nan,
        "key_during_max": max(during) if during else nan,
        "key_during_count": float(len(during)),
        "stall_during": stall_during,
        "key_after": statistics.median(after),
        "key_after_max": max(after),
        "stall_after": stall_after,
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
        print(f"{'app: constructed -> first frame (headless)':48} {app['first']:10.2f}")
        print(
            f"{'app: key -> frame while the index is first built':48} "
            f"{app['key_during']:10.2f} {app['key_during_max']:10.2f}"
            f"   ({app['key_during_count']:.0f} keys in {app['index_build'] / 1000:.1f} s;"
            f" worst stall of the loop {app['stall_during']:.0f} ms)"
        )
        print(
            f"{'app: key -> frame after it':48} {app['key_after']:10.2f} "
            f"{app['key_after_max']:10.2f}   (worst stall {app['stall_after']:.0f} ms)"
        )
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

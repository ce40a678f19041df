"""How fast `mesh mcp` joins the mesh: process start → session row visible to others, and
process start → `initialize` answered (what the agent CLI waits for).

    .venv/bin/python tests/bench/mcp_startup.py [--runs N] [--quick]

The `initialize` request is written the moment the process starts, as a host does, so the
second number is the real wait of an agent CLI. Prints medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}


def registered(db: Path, pid: int) -> bool:
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT metadata FROM agent_sessions").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return any(json.loads(r[0] or "{}").get("pid") == pid for r in rows)


def one_run(folder: Path, index: int) -> tuple[float, float]:
    db = folder / f"mesh-{index}.db"
    cwd = folder / f"ws-{index}"
    cwd.mkdir()
    answered: list[float] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh_core", "mcp", "--db", str(db)],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    proc.stdin.write(json.dumps(INITIALIZE) + "\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]

    def read() -> None:
        proc.stdout.readline()  # type: ignore[union-attr]
        answered.append(time.perf_counter())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not registered(db, proc.pid):
        time.sleep(0.002)
    seen = time.perf_counter()
    reader.join(timeout=30)
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=30)
    return seen - start, answered[0] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one run: checks it works")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_run(Path(tmp), i) for i in range(runs)]
    registered_s = statistics.median(r[0] for r in results)
    initialized_s = statistics.median(r[1] for r in results)
    print(f"mesh mcp start-up over {runs} run(s), medians:")
    print(f"  process start -> registered on the mesh : {registered_s * 1000:7.0f} ms")
    print(f"  process start -> initialize answered    : {initialized_s * 1000:7.0f} ms")
    print(
        f"  registered after {registered_s / initialized_s:.0%} of the time the client waits "
        "for initialize"
    )


if __name__ == "__main__":
    main()

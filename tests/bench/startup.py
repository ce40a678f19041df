"""Start-up figures of the commands, each beside its reference measured in the same run.

    .venv/bin/python tests/bench/startup.py [--quick]

- `mesh send` wall time (median) against `python -c pass` (the interpreter's own start);
- `mesh mcp`: exec -> session registered, exec -> `initialize` answered, exec ->
  `tools/list` answered (the host writes all three requests at once, as hosts do), and
  the idle process's RSS, against a process that only imports the MCP SDK (its wall time
  and RSS): what no server built on the SDK can beat.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_IMPORT = "import mcp.server.mcpserver, mcp.server.stdio"

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
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


@dataclass(frozen=True)
class Startup:
    python_pass_ms: float
    send_ms: float
    sdk_import_ms: float
    sdk_rss_mb: float
    registered_ms: float
    initialize_ms: float
    tools_ms: float
    mcp_rss_mb: float
    tools: int


def _mesh_command() -> list[str]:
    script = Path(sys.executable).with_name("mesh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mesh_cli"]


def _median_wall(
    command: list[str] | Callable[[int], list[str]], runs: int, env: dict[str, str]
) -> float:
    samples = []
    for run in range(runs + 1):  # the first run warms the caches
        argv = command(run) if callable(command) else command
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env, timeout=120)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:]) * 1000


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` (Linux /proc); NaN where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _sdk_reference(runs: int) -> tuple[float, float]:
    """Wall ms of a process that imports the SDK and exits; its RSS after the import."""
    wall = _median_wall([sys.executable, "-c", SDK_IMPORT], runs, dict(os.environ))
    probe = (
        f"{SDK_IMPORT}\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmRSS:'): print(int(line.split()[1]) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()
    return wall, float(out) if out else float("nan")


def _registered(db: Path, pid: int) -> bool:
    import sqlite3

    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            rows = conn.execute("SELECT metadata FROM agent_sessions").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return any(json.loads(r[0] or "{}").get("pid") == pid for r in rows)


def mcp_run(folder: Path, index: int) -> tuple[float, float, float, float, int]:
    """One `mesh mcp` start: ms to registered, initialize, tools/list; idle RSS; tools."""
    db = folder / f"mesh-{index}.db"
    cwd = folder / f"ws-{index}"
    cwd.mkdir()
    answers: dict[int, float] = {}
    tools: list[int] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*_mesh_command(), "mcp", "--db", str(db)],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    for request in (INITIALIZE, INITIALIZED, TOOLS_LIST):
        proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            reply = json.loads(line)
            if "id" in reply:
                answers[reply["id"]] = time.perf_counter()
                if reply["id"] == 2:
                    tools.append(len(reply.get("result", {}).get("tools", [])))
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen = float("nan")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if _registered(db, proc.pid):
            seen = time.perf_counter()
            break
        time.sleep(0.002)
    reader.join(timeout=60)
    time.sleep(1.0)  # idle: the session is served, nothing happens
    rss = rss_mb(proc.pid)
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    nan = float("nan")
    return (
        (seen - start) * 1000,
        (answers[1] - start) * 1000 if 1 in answers else nan,
        (answers[2] - start) * 1000 if 2 in answers else nan,
        rss,
        tools[0] if tools else 0,
    )


def measure(quick: bool = False) -> Startup:
    runs = 3 if quick else 10
    mcp_runs = 1 if quick else 7
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="mesh-startup-") as tmp:
        folder = Path(tmp)
        db = folder / "send.db"
        env["AGENT_MESH_DB"] = str(db)
        env["AGENT_MESH_NAME"] = "bench-cli"
        mesh = _mesh_command()
        subprocess.run([*mesh, "agents"], check=True, capture_output=True, env=env)
        # Recipients that stay active (one per run: the rate limit never trips), so a
        # send goes through every rule.
        register = f"from mesh_core import Mesh; m = Mesh({str(db)!r})\n"
        register += f"for n in range({runs + 1}): m.register(f'rx{{n}}', cwd='/')"
        subprocess.run([sys.executable, "-c", register], check=True, env=env, cwd=ROOT)
        python_pass = _median_wall([sys.executable, "-c", "pass"], runs, env)
        send = _median_wall(lambda n: [*mesh, "send", f"rx{n}", "hello"], runs, env)
        sdk_ms, sdk_rss = _sdk_reference(max(1, runs // 2))
        results = [mcp_run(folder, i) for i in range(mcp_runs)]
    shutil.rmtree(folder, ignore_errors=True)
    return Startup(
        python_pass_ms=python_pass,
        send_ms=send,
        sdk_import_ms=sdk_ms,
        sdk_rss_mb=sdk_rss,
        registered_ms=statistics.median(r[0] for r in results),
        initialize_ms=statistics.median(r[1] for r in results),
        tools_ms=statistics.median(r[2] for r in results),
        mcp_rss_mb=statistics.median(r[3] for r in results),
        tools=min(r[4] for r in results),
    )


def main() -> None:
    quick = "--quick" in sys.argv
    result = measure(quick)
    for field, value in vars(result).items():
        print(f"{field:>16}: {value:.1f}")


if __name__ == "__main__":
    main()

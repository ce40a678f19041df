"""Start-up figures of the commands, each beside its reference measured in the same run
(run.py prints them in its table).

- `mesh send` wall time (median) against `python -c pass` (the interpreter's own start);
- `mesh mcp`: exec -> session registered, exec -> `initialize` answered, exec ->
  `tools/list` answered (the host writes all three requests at once, as hosts do), and
  the idle process's RSS, against a process that only imports the MCP SDK (its wall time
  and RSS): what no server built on the SDK can beat;
- and where that start-up goes (`mcp_phases`, from the server's own debug log, in runs
  of their own): ours before the SDK's import, the import, ours after it up to the
  answer to `initialize`.

Every process runs as an installed package does: with its modules' bytecode cached
(`installed_env`), ours and the references' alike.
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

from .report import Report

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
class Phases:
    """Medians, ms, from the server's debug log: exec -> the SDK's import starts (Python's
    start, ours, the registered session), that import, its end -> the first answer
    (to `initialize`) written."""

    before_import_ms: float
    import_ms: float
    after_import_ms: float


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
    phases: Phases | None = None


def installed_env(folder: Path) -> dict[str, str]:
    """The environment to time a command in: bytecode cached as after `pip install`.

    pip compiles every module it installs, and an editable checkout writes `__pycache__`
    on its first run; with PYTHONDONTWRITEBYTECODE set (some sandboxes and CI images do),
    every start would compile our modules from source, a cost no installed user pays,
    while the SDK's site-packages still load their bytecode. So the timed processes
    write to and read from a cache of their own (PYTHONPYCACHEPREFIX, under `folder`,
    leaving the checkout untouched), warmed by each measurement's first, untimed run.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


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


def _sdk_run(env: dict[str, str]) -> tuple[float, float]:
    """One process that only imports the SDK: ms from exec to the SDK imported (it says
    so on stdout, as the server's answer does), and its RSS a second later, idle: what no
    server built on the SDK can beat. Timed to the line, not to the exit: a process that
    exits also pays for tearing its modules down, which a serving `mesh mcp` never does."""
    code = f"{SDK_IMPORT}\nimport sys\nprint('imported', flush=True)\nsys.stdin.read()"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    line = proc.stdout.readline()
    wall = (time.perf_counter() - start) * 1000 if line else float("nan")
    time.sleep(1.0)  # idle, as mcp_run waits before reading the server's RSS
    size = rss_mb(proc.pid)
    proc.stdin.close()
    proc.wait(timeout=30)
    return wall, size


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


def mcp_run(
    folder: Path, index: int, env: dict[str, str]
) -> tuple[float, float, float, float, int]:
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
        env=env,
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


PHASE_LINES = ("MCP SDK import started", "MCP SDK imported", "first answer written")


def mcp_phases(folder: Path, runs: int, env: dict[str, str]) -> Phases:
    """`runs` starts of `mesh mcp` with its debug log on (AGENT_MESH_LOG), each split at
    the log's lines: times are the log's epoch stamps against the time taken just
    before the exec. Runs of their own: the log's writes stay out of the other rows."""
    nan = float("nan")
    server_env = {k: v for k, v in env.items() if k not in ("AGENT_MESH_NAME", "AGENT_MESH_DB")}
    splits: list[tuple[float, float, float]] = []
    for index in range(runs):
        log = folder / f"phases-{index}.log"
        cwd = folder / f"phases-ws-{index}"
        cwd.mkdir()
        start = time.time()
        proc = subprocess.Popen(
            [*_mesh_command(), "mcp", "--db", str(folder / f"phases-{index}.db")],
            cwd=cwd,
            env={**server_env, "AGENT_MESH_LOG": str(log)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(INITIALIZE) + "\n")
        proc.stdin.flush()
        proc.stdout.readline()
        proc.stdin.close()
        proc.wait(timeout=30)
        stamps: dict[str, float] = {}
        for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
            for phase in PHASE_LINES:
                if line.endswith(phase):
                    stamps.setdefault(phase, float(line.split()[0]))
        begun, imported, answered = (stamps.get(p, nan) for p in PHASE_LINES)
        splits.append(
            ((begun - start) * 1000, (imported - begun) * 1000, (answered - imported) * 1000)
        )
    return Phases(*(statistics.median(s[i] for s in splits) for i in range(3)))


def measure(runs: int, mcp_runs: int) -> Startup:
    """Medians over `runs` command runs and `mcp_runs` starts of `mesh mcp`."""
    with tempfile.TemporaryDirectory(prefix="mesh-startup-") as tmp:
        folder = Path(tmp)
        env = installed_env(folder)
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
        # Untimed first runs warm the caches. Then the SDK-only process and the server
        # take turns, so a change in the machine's load falls on both alike.
        _sdk_run(env)
        mcp_run(folder, mcp_runs, env)
        sdk: list[tuple[float, float]] = []
        results = []
        for i in range(mcp_runs):
            sdk.append(_sdk_run(env))
            results.append(mcp_run(folder, i, env))
        sdk_ms = statistics.median(w for w, _ in sdk)
        sdk_rss = statistics.median(r for _, r in sdk)
        phases = mcp_phases(folder, mcp_runs, env)
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
        phases=phases,
    )


def add_rows(report: Report, result: Startup, figures: tuple[str, ...]) -> None:
    """figures: send wall, mcp registered, initialize, tools/list, RSS."""
    send_target = 2.5 * result.python_pass_ms + 60
    report.add(
        figures[0],
        result.send_ms,
        result.python_pass_ms,
        "ms",
        f"≤ {send_target:.0f} ms",
        result.send_ms <= send_target,
    )
    sdk = result.sdk_import_ms
    report.add(figures[1], result.registered_ms, sdk, "ms", "≤ 150 ms", result.registered_ms <= 150)
    report.add(
        figures[2],
        result.initialize_ms,
        sdk,
        "ms",
        f"≤ {sdk + 100:.0f} ms",
        result.initialize_ms <= sdk + 100,
    )
    report.add(figures[3], result.tools_ms, sdk, "ms", "(info)", None)
    rss_target = result.sdk_rss_mb + 10
    report.add(
        figures[4],
        result.mcp_rss_mb,
        result.sdk_rss_mb,
        "MB",
        f"≤ {rss_target:.0f} MB",
        result.mcp_rss_mb <= rss_target,
    )
    if result.phases is not None:
        # Where exec -> initialize goes; the SDK's import alone (exec -> imported) beside
        # each, which includes Python's own start.
        phases = result.phases
        report.add(
            "  exec → SDK import starts (ours)", phases.before_import_ms, sdk, "ms", "(info)", None
        )
        report.add("  SDK import, in the server", phases.import_ms, sdk, "ms", "(info)", None)
        report.add(
            "  SDK imported → initialize (ours)", phases.after_import_ms, sdk, "ms", "(info)", None
        )
    if result.tools < 6:
        report.broken.append(f"mesh mcp listed {result.tools} tools, not the six")

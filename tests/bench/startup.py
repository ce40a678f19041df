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

Every process runs from the project as the README's quick start installs it (`install`:
`pip install .` into a venv of the bench's own), ours and the references' alike, and the
time to "registered" is taken as a watching participant sees the session: woken by the
file system's event for its commit, with no poll beside the start it times.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .report import Report, paired_median_ms

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
    how: str = ""


@dataclass(frozen=True)
class Install:
    """What the timed processes run: an interpreter, the `mesh` command, an environment,
    and how they were installed (printed with the figures)."""

    python: str
    mesh: list[str]
    env: dict[str, str]
    how: str


def install(folder: Path) -> Install:
    """The project installed as the README's quick start does (`pip install .`, not
    editable) into a venv under `folder` that reaches this interpreter's dependencies (the
    same SDK files) through a path file, so no dependency is built again. An editable
    install runs setuptools' finder, from site-packages, at every start of every Python
    in its venv: a cost only a developer's checkout pays. Where the install cannot be
    made (no build backend to be had offline), the checkout is timed and `how` says so."""
    venv = folder / "venv"
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_MESH_")}
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        python = str(venv / "bin" / "python")
        where = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        deps = dict.fromkeys((sysconfig.get_path("purelib"), sysconfig.get_path("platlib")))
        (Path(where) / "bench-deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q"]
            + [str(ROOT)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
            env={**bare, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        last = str(detail).strip().splitlines()[-1:] or [type(exc).__name__]
        return Install(
            sys.executable,
            _mesh_command(),
            installed_env(folder),
            f"the editable checkout (`pip install .` into a venv failed: {last[0]})",
        )
    return Install(
        python, [str(venv / "bin" / "mesh")], bare, "the project installed with `pip install .`"
    )


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


def _median_walls(
    commands: dict[str, Callable[[int], list[str]]], runs: int, env: dict[str, str]
) -> dict[str, float]:
    """Median wall time, ms, of each command over `runs` runs, taking turns run by run
    (`paired_median_ms`), so a change in the machine's load falls on a command and its
    reference alike. A command is called with its run's number (0: the warm-up)."""

    def timed(command: Callable[[int], list[str]]) -> Callable[[], object]:
        calls = itertools.count()
        return lambda: subprocess.run(
            command(next(calls)), check=True, capture_output=True, env=env, timeout=120
        )

    medians = paired_median_ms([(timed(c), None) for c in commands.values()], runs)
    return dict(zip(commands, medians, strict=True))


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` (Linux /proc); NaN where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _sdk_run(python: str, env: dict[str, str]) -> tuple[float, float]:
    """One process that only imports the SDK: ms from exec to the SDK imported (it says
    so on stdout, as the server's answer does), and its RSS a second later, idle: what no
    server built on the SDK can beat. Timed to the line, not to the exit: a process that
    exits also pays for tearing its modules down, which a serving `mesh mcp` never does."""
    code = f"{SDK_IMPORT}\nimport sys\nprint('imported', flush=True)\nsys.stdin.read()"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [python, "-c", code],
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

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            rows = conn.execute("SELECT metadata FROM agent_sessions").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return any(json.loads(r[0] or "{}").get("pid") == pid for r in rows)


# After a write event that showed no session yet, look again this soon: SQLite publishes a
# commit in the -shm wal-index (mmap: no event) just after its last -wal write.
RELOOKS = (0.001, 0.002, 0.005, 0.01, 0.02)


def _wait_registered(
    db: Path, proc: subprocess.Popen[str], wake: threading.Event, deadline: float
) -> float:
    """perf_counter() when `proc`'s session is first seen in `db`: a read at each write
    event (and a few quick looks after one), as a watching participant reads; NaN if the
    process ended or the deadline passed first."""
    relooks: Iterator[float] = iter(())
    while time.monotonic() < deadline and proc.poll() is None:
        if _registered(db, proc.pid):
            return time.perf_counter()
        if wake.wait(timeout=next(relooks, 0.5)):
            wake.clear()
            relooks = iter(RELOOKS)
    return float("nan")


def mcp_run(folder: Path, index: int, target: Install) -> tuple[float, float, float, float, int]:
    """One `mesh mcp` start on a mesh that already exists (as every start but a machine's
    first): ms to registered, initialize, tools/list; idle RSS; tools."""
    from mesh_core.mesh import Mesh
    from mesh_core.watch import CommitWatch

    db = folder / f"mesh-{index}.db"
    Mesh(db).close()
    cwd = folder / f"ws-{index}"
    cwd.mkdir()
    answers: dict[int, float] = {}
    tools: list[int] = []
    wake = threading.Event()
    watch = CommitWatch(db, wake.set)
    if not watch.start():
        raise RuntimeError(f"cannot time the registration: {watch.reason}")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*target.mesh, "mcp", "--db", str(db)],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=target.env,
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
    try:
        seen = _wait_registered(db, proc, wake, time.monotonic() + 60)
    finally:
        watch.close()
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


def mcp_phases(folder: Path, runs: int, target: Install) -> Phases:
    """`runs` starts of `mesh mcp` with its debug log on (AGENT_MESH_LOG), each split at
    the log's lines: times are the log's epoch stamps against the time taken just
    before the exec. Runs of their own: the log's writes stay out of the other rows.
    Each starts on a mesh file that already exists, as `mcp_run`'s do, so "ours before
    the import" holds no schema creation that the timed starts do not pay."""
    from mesh_core.mesh import Mesh

    nan = float("nan")
    server_env = {
        k: v for k, v in target.env.items() if k not in ("AGENT_MESH_NAME", "AGENT_MESH_DB")
    }
    splits: list[tuple[float, float, float]] = []
    for index in range(runs):
        log = folder / f"phases-{index}.log"
        cwd = folder / f"phases-ws-{index}"
        cwd.mkdir()
        db = folder / f"phases-{index}.db"
        Mesh(db).close()
        start = time.time()
        proc = subprocess.Popen(
            [*target.mesh, "mcp", "--db", str(db)],
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
        target = install(folder)
        db = folder / "send.db"
        env = {**target.env, "AGENT_MESH_DB": str(db), "AGENT_MESH_NAME": "bench-cli"}
        cli = replace(target, env=env)
        mesh = target.mesh
        subprocess.run([*mesh, "agents"], check=True, capture_output=True, env=env)
        # Recipients that stay active (one per run: the rate limit never trips), so a
        # send goes through every rule.
        register = f"from mesh_core import Mesh; m = Mesh({str(db)!r})\n"
        register += f"for n in range({runs + 1}): m.register(f'rx{{n}}', cwd='/')"
        subprocess.run([target.python, "-c", register], check=True, env=env, cwd=folder)
        walls = _median_walls(
            {
                "pass": lambda n: [target.python, "-c", "pass"],
                "send": lambda n: [*mesh, "send", f"rx{n}", "hello"],
            },
            runs,
            env,
        )
        python_pass, send = walls["pass"], walls["send"]
        # Untimed first runs warm the caches. Then the SDK-only process and the server
        # take turns, so a change in the machine's load falls on both alike.
        _sdk_run(target.python, env)
        mcp_run(folder, mcp_runs, cli)
        sdk: list[tuple[float, float]] = []
        results = []
        for i in range(mcp_runs):
            sdk.append(_sdk_run(target.python, env))
            results.append(mcp_run(folder, i, cli))
        sdk_ms = statistics.median(w for w, _ in sdk)
        sdk_rss = statistics.median(r for _, r in sdk)
        phases = mcp_phases(folder, mcp_runs, target)
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
        how=target.how,
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

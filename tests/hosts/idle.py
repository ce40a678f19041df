"""A message sent while an interactive Codex session is idle (mesh_agents.wake).

The one run a headless prompt cannot show: the real `codex` TUI in a pseudo-terminal,
as `mesh install codex` set it up (hooks trusted once, the folder trusted once). Its
first turn calls check_inbox (so Codex has passed its thread id to `mesh mcp`) and
ends; once the TUI reports itself idle (its `OSC 7501 state=done` title report), a peer
sends a message. What follows is logged: does a model request come, without anyone
typing, and does it carry the notice and the message?
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import harness, hostbin, tty
from .model_server import Logged, ModelServer, call, say

IDLE_SCRIPT = [call("check_inbox"), say("done")]
IDLE_TEXT = "sent while you were idle"
WAIT = 45.0  # seconds the idle session is watched after the send
START_WAIT = 90.0


@dataclass
class IdleRun:
    ran: bool = False
    skip_reason: str | None = None
    version: str = "?"
    install_output: str = ""
    idle_reached: bool = False
    message_id: int = 0
    sent_at: float = 0.0
    before: int = 0  # model requests before the send
    after: list[Logged] = field(default_factory=list)  # model requests after it
    read_after: bool = False
    queued: int = 0  # `codex queue` writes Codex took (its queue database's revisions)
    screen: str = ""

    @property
    def woke_after(self) -> float | None:
        """Seconds from the send to the first model request after it."""
        return self.after[0].at - self.sent_at if self.after else None

    def carried(self, needle: str) -> bool:
        return any(needle in r.text for r in self.after)


def stop_daemon_updater(codex_home: Path) -> None:
    """`daemon stop` leaves the daemon's updater loop running: end it (by the pid Codex
    wrote, only if that process still runs from this CODEX_HOME)."""
    pidfile = codex_home / "app-server-daemon" / "daemon-updater.pid"
    try:
        pid = int(json.loads(pidfile.read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return
    if os.fsencode(str(codex_home)) in cmdline:
        os.kill(pid, signal.SIGTERM)


def stop_codex_daemon(argv: list[str], codex_env: dict[str, str], codex_home: Path) -> None:
    """End the app-server daemon a Codex TUI left (as the user's `codex` would leave it),
    its updater loop, and its own copy of the Codex binaries (hundreds of MB a run)."""
    subprocess.run(
        [*argv, "app-server", "daemon", "stop"],
        env=codex_env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stop_daemon_updater(codex_home)
    shutil.rmtree(codex_home / "packages", ignore_errors=True)


def queue_writes(path: Path) -> int:
    """How many times anything was queued into Codex's queue database (0 if none)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM queued_thread_revisions").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def run_codex_idle(tmp: Path, *, wake: bool = True) -> IdleRun:
    run = IdleRun()
    try:
        host, run.install_output = tty.prepare(tmp, "codex", *([] if wake else ["--no-wake"]))
    except hostbin.HostUnavailable as exc:
        run.skip_reason = str(exc)
        return run
    run.version, mesh = host.version, host.mesh
    codex_env = dict(host.env, CODEX_HOME=str(host.home / ".codex"))
    harness.codex_hooks(host.argv, codex_env, host.workspace, trust=True)
    with ModelServer(IDLE_SCRIPT, log_path=tmp / "requests.jsonl") as server:
        _, host_env = harness.codex_cmd(host.argv, server.url, host.home, host.env, tmp)
        tty.trust_codex_project(host.home, host.workspace)
        host_env["TERM"] = "xterm-256color"
        pid, fd, term = tty.spawn([*host.argv, harness.PROMPT], host_env, host.workspace)
        try:
            deadline = time.monotonic() + START_WAIT
            while time.monotonic() < deadline:
                done = any(r.step == 1 for r in server.requests)
                if done and term.count(b"state=done") >= 1:
                    run.idle_reached = True
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # idle for a moment, as a session between prompts is
            run.before = len(server.model_requests)
            run.sent_at = time.time()
            run.message_id = mesh.send(host.peer, harness.WORKSPACE, IDLE_TEXT).message_id
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                run.after = server.model_requests[run.before :]
                if run.after and term.count(b"state=done") >= 2:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            run.after = server.model_requests[run.before :]
            run.read_after = mesh.get(run.message_id).read
            run.ran = True
        finally:
            tty.end(pid, fd, term)
            # Codex 0.171's TUI runs its session in an app-server daemon that outlives it
            # (with `mesh mcp` as its child): stop it as the user's `codex` would leave it.
            stop_codex_daemon(host.argv, codex_env, host.home / ".codex")
            run.queued = queue_writes(host.home / ".codex" / "queue_1.sqlite")
            run.screen = bytes(term.output).decode("utf-8", "replace")
            (tmp / "screen.txt").write_text(run.screen)
            mesh.close()
    return run

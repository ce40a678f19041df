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
import pty
import select
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mesh_core import Mesh

from . import harness, hostbin
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


class Terminal:
    """The TUI's pseudo-terminal: keeps what it prints and answers its cursor queries."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.output = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)
            if b"\x1b[6n" in data:  # cursor position report
                os.write(self.fd, b"\x1b[1;1R")
            if b"\x1b[c" in data or b"\x1b[0c" in data:  # device attributes
                os.write(self.fd, b"\x1b[?62;c")

    def count(self, needle: bytes) -> int:
        return bytes(self.output).count(needle)

    def close(self) -> None:
        self._stop.set()


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
    pkg = hostbin.PACKAGES["codex"]
    try:
        argv = hostbin.command(pkg)
    except hostbin.HostUnavailable as exc:
        run.skip_reason = str(exc)
        return run
    home, workspace, db, env = harness.prepare(tmp)
    run.version = hostbin.version_of(argv, env)
    mesh = Mesh(db)
    peer = mesh.register(harness.PEER, kind="cli").session_id
    run.install_output = harness.install("codex", env, *([] if wake else ["--no-wake"]))
    codex_env = dict(env, CODEX_HOME=str(home / ".codex"))
    harness.codex_hooks(argv, codex_env, workspace, trust=True)
    with ModelServer(IDLE_SCRIPT, log_path=tmp / "requests.jsonl") as server:
        _, host_env = harness.codex_cmd(argv, server.url, home, env, tmp)
        config = home / ".codex" / "config.toml"
        # The user's one-time "trust this folder" answer in the TUI.
        config.write_text(
            config.read_text() + f'\n[projects."{workspace}"]\ntrust_level = "trusted"\n'
        )
        host_env["TERM"] = "xterm-256color"
        pid, fd = pty.fork()
        if pid == 0:  # the child: the TUI, with the prompt a user would type
            os.chdir(workspace)
            os.execve(argv[0], [*argv, harness.PROMPT], host_env)
        term = Terminal(fd)
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
            run.message_id = mesh.send(peer, harness.WORKSPACE, IDLE_TEXT).message_id
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
            term.close()
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
            # Codex 0.171's TUI runs its session in an app-server daemon that outlives it
            # (with `mesh mcp` as its child): stop it as the user's `codex` would leave it.
            stop_codex_daemon(argv, codex_env, home / ".codex")
            run.queued = queue_writes(home / ".codex" / "queue_1.sqlite")
            run.screen = bytes(term.output).decode("utf-8", "replace")
            (tmp / "screen.txt").write_text(run.screen)
            mesh.close()
    return run

"""Two interactive Codex sessions on one CODEX_HOME (mesh_core.host_sessions).

Codex 0.171's TUI runs both sessions in one app-server daemon: each thread has its own
`mesh mcp`, and the hooks of both run with the daemon as their parent. Both TUIs run in
pseudo-terminals as `mesh install codex` set them up; after their first turn a peer sends
one message to each thread's mesh session, and the wake (`codex queue`) starts a turn in
each. Every model request names its thread (`prompt_cache_key`), so the run shows whose
model got which message. Then TUI A quits (`/quit`): how long until its mesh session is
stopped, and where does mail left unread for it go?
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import harness, hostbin, tty
from .idle import IDLE_SCRIPT, stop_codex_daemon
from .model_server import Logged, ModelServer

START_WAIT = 120.0
WAKE_WAIT = 60.0
STOP_WAIT = 20.0
TEXT = {"A": "only for session A", "B": "only for session B"}
LEFT = "left unread when A quit"


@dataclass
class TwoRun:
    ran: bool = False
    skip_reason: str | None = None
    version: str = "?"
    idle_reached: bool = False
    threads: dict[str, str] = field(default_factory=dict)  # "A"/"B" -> Codex thread id
    sessions: list[dict[str, Any]] = field(default_factory=list)  # active, after turn 1
    requests: list[Logged] = field(default_factory=list)
    stopped_after: float | None = None  # seconds from /quit to A's session stopped
    left_to: str | None = None  # "A", "B" or a session id: where LEFT went
    left_read: bool = False

    def thread_requests(self, label: str) -> list[Logged]:
        thread = self.threads.get(label)
        return [r for r in self.requests if thread_of(r) == thread and r.step is not None]


def thread_of(request: Logged) -> str | None:
    body = request.body
    return body.get("prompt_cache_key") if isinstance(body, dict) else None


def _sessions(db: Path) -> list[dict[str, Any]]:
    rows = harness.read_sessions(db)
    for row in rows:
        row["metadata"] = json.loads(row["metadata"] or "{}")
    return rows


def _wait(until: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if until():
            return True
        time.sleep(0.2)
    return bool(until())


def run_two_tuis(tmp: Path) -> TwoRun:
    run = TwoRun()
    try:
        host, _ = tty.prepare(tmp, "codex")
    except hostbin.HostUnavailable as exc:
        run.skip_reason = str(exc)
        return run
    argv, home, workspace, db = host.argv, host.home, host.workspace, host.db
    run.version, mesh, peer = host.version, host.mesh, host.peer
    codex_env = dict(host.env, CODEX_HOME=str(home / ".codex"))
    harness.codex_hooks(argv, codex_env, workspace, trust=True)
    tuis: dict[str, tuple[int, int, tty.Terminal]] = {}
    with ModelServer(IDLE_SCRIPT, log_path=tmp / "requests.jsonl") as server:
        _, host_env = harness.codex_cmd(argv, server.url, home, host.env, tmp)
        tty.trust_codex_project(home, workspace)
        host_env["TERM"] = "xterm-256color"
        try:
            for label in ("A", "B"):
                tuis[label] = tty.spawn([*argv, harness.PROMPT], host_env, workspace)
                # Its first turn under way: the other one starts in a known order.
                _wait(lambda: len({thread_of(r) for r in server.main_requests}) > len(tuis) - 1, 60)
            run.idle_reached = _wait(
                lambda: all(t.count(b"state=done") >= 1 for _, _, t in tuis.values()), START_WAIT
            )
            firsts: list[str] = []
            for r in server.main_requests:
                thread = thread_of(r)
                if thread and thread not in firsts:
                    firsts.append(thread)
            run.threads = dict(zip(("A", "B"), firsts, strict=False))
            rows = _sessions(db)
            run.sessions = [s for s in rows if s["status"] == "active"]
            by_thread = {
                s["metadata"].get("host_session_id"): s["session_id"]
                for s in run.sessions
                if s["metadata"].get("client") == "mesh-mcp"
            }
            own = {label: by_thread.get(thread) for label, thread in run.threads.items()}
            if set(own) != {"A", "B"} or None in own.values():
                run.ran = True
                return run
            time.sleep(1.0)  # idle for a moment, as a session between prompts is
            before = len(server.requests)
            for label in ("A", "B"):
                mesh.send(peer, str(own[label]), TEXT[label])
            _wait(
                lambda: (
                    all(any(TEXT[k] in r.text for r in server.requests[before:]) for k in TEXT)
                    and all(t.count(b"state=done") >= 2 for _, _, t in tuis.values())
                ),
                WAKE_WAIT,
            )
            # Mail left for A, then A quits before its wake: it must move on, not wait.
            left = mesh.send(peer, str(own["A"]), LEFT).message_id
            pid, fd, term = tuis["A"]
            quit_at = time.monotonic()
            os.write(fd, b"/quit")
            time.sleep(0.5)
            os.write(fd, b"\r")

            def a_stopped() -> bool:
                return any(
                    s["session_id"] == own["A"] and s["status"] == "stopped" for s in _sessions(db)
                )

            if _wait(a_stopped, STOP_WAIT):
                run.stopped_after = time.monotonic() - quit_at
            # B's next prompt (its wake would wait out the one-a-minute bound): the
            # UserPromptSubmit hook of B's turn hands over what moved to B.
            _, fd_b, _ = tuis["B"]
            os.write(fd_b, b"anything new?")
            time.sleep(0.5)
            os.write(fd_b, b"\r")
            _wait(lambda: any(LEFT in r.text for r in server.requests[before:]), WAKE_WAIT)
            got = mesh.get(left)
            names = {v: k for k, v in own.items()}
            run.left_to = names.get(got.recipient_session_id, got.recipient_session_id)
            run.left_read = got.read
            run.requests = list(server.requests)
            run.ran = True
        finally:
            for pid, fd, term in tuis.values():
                tty.end(pid, fd, term)
            stop_codex_daemon(argv, codex_env, home / ".codex")
            for label, (_, _, term) in tuis.items():
                (tmp / f"screen{label}.txt").write_bytes(bytes(term.output))
            mesh.close()
    return run

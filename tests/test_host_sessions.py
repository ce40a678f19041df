"""One host session is one mesh session, also when one host process runs several.

Codex 0.171's TUI runs every session of a CODEX_HOME in one app-server daemon: each
thread gets its own `mesh mcp`, and every hook of every thread runs with the daemon as
its parent (measured on the real CLI, see docs/contract.md §3.2). Here this test process
plays the daemon: it starts two real `mesh mcp` servers and runs real `mesh hook`
processes, all with it as their host, as Codex does — the hook input's `session_id` and
the `tools/call` `_meta` thread id name the thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import git_repo, identity_free_env

from mesh_core import Mesh
from mesh_core.models import Agent

TIMEOUT = 30.0
THREAD_A = "01a234ce-76db-76a0-9b56-d05c0ac0b3fe"
THREAD_B = "01a234ce-78e1-7d02-a69d-c1aebe83f2bd"
THREAD_C = "01a234cf-1111-7222-8333-944445555666"
CODEX_INIT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {"experimental": {"codex/auth-change": {}}},
    "clientInfo": {"name": "codex-mcp-client", "title": "Codex", "version": "0.171.0"},
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "alpha")


class Server:
    """A real `mesh mcp`, spoken to over stdio as Codex 0.171 speaks to it."""

    def __init__(self, db: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mesh_cli", "--db", str(db), "mcp", "--no-wake"],
            cwd=cwd,
            env=identity_free_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.ids = 0
        self.ask("initialize", CODEX_INIT)
        self.line({"method": "notifications/initialized"})

    def line(self, payload: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **payload}) + "\n")
        self.proc.stdin.flush()

    def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        self.line({"id": self.ids, "method": method, "params": params})
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            answer = json.loads(raw)
            if answer.get("id") == self.ids:
                assert "result" in answer, answer
                return dict(answer["result"])
        raise AssertionError(f"mesh mcp closed before answering {method}")

    def call(self, thread: str, tool: str = "get_agents") -> dict[str, Any]:
        """A tools/call with the `_meta` Codex 0.171 sends (captured from the real CLI)."""
        meta = {
            "callId": "call_0001",
            "x-codex-turn-metadata": {"session_id": thread, "thread_id": thread},
        }
        return self.ask("tools/call", {"_meta": meta, "name": tool, "arguments": {}})

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def servers(db_path: Path, repo: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for _ in range(2):
            started.append(Server(db_path, repo))
        yield started
    finally:
        for server in started:
            server.close()


def hook(db: Path, cwd: Path, event: str, thread: str, **extra: Any) -> dict[str, Any] | None:
    """`mesh hook EVENT` with the input Codex 0.171 writes (captured from the real CLI)."""
    data = {
        "session_id": thread,
        "transcript_path": None,
        "cwd": str(cwd),
        "hook_event_name": event,
        "model": "test-model",
        "permission_mode": "default",
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", "mesh_cli", "--db", str(db), "hook", event],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=identity_free_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def context(out: dict[str, Any] | None) -> str:
    return "" if out is None else str(out["hookSpecificOutput"]["additionalContext"])


def sessions(mesh: Mesh) -> list[Agent]:
    return [a for a in mesh.agents("all") if a.agent_name == "alpha"]


def by_client(mesh: Mesh, client: str, status: str = "active") -> list[Agent]:
    return [
        a for a in sessions(mesh) if a.metadata.get("client") == client and a.status.value == status
    ]


def test_two_threads_of_one_host_process_each_get_only_their_own_mail(
    db_path: Path, repo: Path, servers: list[Server]
) -> None:
    """Both threads have called a tool (Codex named them): a hook of thread B hands B's
    model only B's mail, never A's, and the other way round."""
    first, second = servers
    first.call(THREAD_A)
    second.call(THREAD_B)
    with Mesh(db_path) as mesh:
        # The first server registered first: it answered `initialize` before the second
        # one started.
        mcp_a, mcp_b = sorted(by_client(mesh, "mesh-mcp"), key=lambda a: a.registered_at)
        peer = mesh.register("peer", kind="cli").session_id
        for_a = mesh.send(peer, mcp_a.session_id, "for thread A only")
        for_b = mesh.send(peer, mcp_b.session_id, "for thread B only")
        got_b = context(hook(db_path, repo, "UserPromptSubmit", THREAD_B, prompt="hi"))
        assert "for thread B only" in got_b and "for thread A only" not in got_b
        assert not mesh.get(for_a.message_id).read
        got_a = context(hook(db_path, repo, "UserPromptSubmit", THREAD_A, prompt="hi"))
        assert "for thread A only" in got_a and "for thread B only" not in got_a
        assert mesh.get(for_a.message_id).read and mesh.get(for_b.message_id).read
        assert by_client(mesh, "mesh-hook") == []  # no session nobody runs
        assert mesh.agent(mcp_a.session_id).metadata["host_session_id"] == THREAD_A
        assert mesh.agent(mcp_b.session_id).metadata["host_session_id"] == THREAD_B


def test_hooks_before_the_first_tool_call_wait_in_their_own_session_then_merge(
    db_path: Path, repo: Path, servers: list[Server]
) -> None:
    """As measured: both servers start before either thread's SessionStart hook, and no
    server knows its thread yet. A hook cannot tell which server is its own, so it keeps
    a session of its own for its thread (never another thread's); the thread's server
    takes that session over, with its mail, at its first tool call."""
    first, second = servers
    with Mesh(db_path) as mesh:
        assert hook(db_path, repo, "SessionStart", THREAD_B, source="startup") is None
        (waiting,) = by_client(mesh, "mesh-hook")
        assert waiting.metadata["host_session_id"] == THREAD_B
        peer = mesh.register("peer", kind="cli").session_id
        sent = mesh.send(peer, waiting.session_id, "for thread B, sent early")
        second.call(THREAD_B)
        assert by_client(mesh, "mesh-hook") == []
        moved = mesh.get(sent.message_id)
        mcp_b = mesh.agent(moved.recipient_session_id)
        assert mcp_b.metadata["client"] == "mesh-mcp" and not moved.read
        assert mcp_b.metadata["host_session_id"] == THREAD_B
        # Thread A's hook runs while A's server is still unnamed: not B's session.
        assert hook(db_path, repo, "UserPromptSubmit", THREAD_A, prompt="hi") is None
        assert not mesh.get(sent.message_id).read
        got = context(hook(db_path, repo, "UserPromptSubmit", THREAD_B, prompt="hi"))
        assert "for thread B, sent early" in got
        first.call(THREAD_A)
        assert by_client(mesh, "mesh-hook") == []  # A's hook session went to A's server
        assert len(by_client(mesh, "mesh-mcp")) == 2
    # B's server gone, A's is the daemon's only session: a new thread's hook still does
    # not take it, since A's server knows its own thread.
    second.close()
    servers.remove(second)
    with Mesh(db_path) as mesh:
        hook(db_path, repo, "SessionStart", THREAD_C, source="startup")
        (third,) = by_client(mesh, "mesh-hook")
        assert third.metadata["host_session_id"] == THREAD_C


def test_session_end_stops_only_its_own_threads_hook_session(
    db_path: Path, repo: Path, servers: list[Server]
) -> None:
    """Codex 0.171 sends SessionEnd (with the thread id) when the daemon unloads a
    thread: only that thread's hook session stops, its unread mail moves to a live
    session of the workspace; a SessionEnd for a thread with no session registers none."""
    with Mesh(db_path) as mesh:
        hook(db_path, repo, "SessionStart", THREAD_A, source="startup")
        hook(db_path, repo, "SessionStart", THREAD_B, source="startup")
        hooked = {a.metadata["host_session_id"]: a for a in by_client(mesh, "mesh-hook")}
        assert set(hooked) == {THREAD_A, THREAD_B}
        peer = mesh.register("peer", kind="cli").session_id
        sent = mesh.send(peer, hooked[THREAD_A].session_id, "left behind by A")
        assert hook(db_path, repo, "SessionEnd", THREAD_A, reason="other") is None
        assert mesh.agent(hooked[THREAD_A].session_id).status.value == "stopped"
        assert mesh.agent(hooked[THREAD_B].session_id).status.value == "active"
        heir = mesh.agent(mesh.get(sent.message_id).recipient_session_id)
        assert heir.status.value == "active" and not mesh.get(sent.message_id).read
        count = len(sessions(mesh))
        hook(db_path, repo, "SessionEnd", "01a234ce-0000-7000-8000-000000000000", reason="other")
        assert len(sessions(mesh)) == count


def test_a_lone_host_session_keeps_one_mesh_session(db_path: Path, repo: Path) -> None:
    """Claude Code's way (one session per host process, a server that never learns the
    session id): the hook claims the server's session; the server started after a hook
    takes the hook's session over. Still one session for the workspace."""
    server = Server(db_path, repo)
    try:
        with Mesh(db_path) as mesh:
            out = hook(db_path, repo, "UserPromptSubmit", "9c1b6a1e-claude-session", prompt="x")
            assert out is None
            (only,) = [a for a in sessions(mesh) if a.status.value == "active"]
            assert only.metadata["client"] == "mesh-mcp"
            assert only.metadata["host_session_id"] == "9c1b6a1e-claude-session"
            # `/clear`: a new session id, the same process and server: still that session.
            hook(db_path, repo, "SessionStart", "after-clear-session", source="clear")
            (same,) = [a for a in sessions(mesh) if a.status.value == "active"]
            assert same.session_id == only.session_id
            assert same.metadata["host_session_id"] == "after-clear-session"
            peer = mesh.register("peer", kind="cli").session_id
            mesh.send(peer, "alpha", "after the clear")
            got = context(
                hook(db_path, repo, "UserPromptSubmit", "after-clear-session", prompt="x")
            )
            assert "after the clear" in got
    finally:
        server.close()
    with Mesh(db_path) as mesh:
        hook(db_path, repo, "SessionStart", "second-claude-session", source="startup")
        late = Server(db_path, repo)
        try:
            deadline = time.monotonic() + TIMEOUT
            while by_client(mesh, "mesh-hook"):
                assert time.monotonic() < deadline, "the server did not take the hook's session"
                time.sleep(0.05)
            (only,) = [a for a in sessions(mesh) if a.status.value == "active"]
            assert only.metadata["client"] == "mesh-mcp"
            assert only.metadata["host_session_id"] == "second-claude-session"
        finally:
            late.close()


def test_a_hook_session_registered_while_the_server_starts_is_taken_over(
    tmp_path: Path, repo: Path
) -> None:
    """Claude Code runs its SessionStart hook about when `mesh mcp` starts. A hook that
    registers after the server looked for one and before the server registered must not
    leave two live sessions for one host session (mail split between them: the server's
    results then never say that the hook's share waits)."""
    import signal

    from mesh_agents.mcp_server import MeshMCP
    from mesh_core.lifecycle import host_metadata
    from mesh_core.rules import CLIENT_HOOK

    db = tmp_path / "mesh.db"
    mesh = Mesh(db)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    server = MeshMCP(Mesh(db), "alpha", cwd=str(repo))  # looks: no hook session yet
    hook = mesh.register(
        "alpha",
        client=CLIENT_HOOK,
        cwd=repo,
        metadata=host_metadata(server.host_pid, "claude-session-1"),
    ).session_id
    peer = mesh.register("peer").session_id
    waiting = mesh.send(peer, hook, "for this host session").message_id
    try:
        ours = server.start().session_id
        live = [a.session_id for a in mesh.host_sessions(None, server.host_pid)]
        assert live == [ours]
        assert [m.message_id for m in mesh.peek_inbox(ours)] == [waiting]
        # a later hook of that host session acts as the server's session
        found = mesh.host_session("alpha", server.host_pid, "claude-session-1")
        assert found is not None and found.session_id == ours
    finally:
        server.participant.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        mesh.close()

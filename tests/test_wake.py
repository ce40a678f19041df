"""`mesh mcp` waking an idle Codex session with `codex queue` (mesh_agents.wake).

The real Codex is in tests/hosts (test_codex_wake); here a stand-in `codex` on PATH
records each command line, on a real database file.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import identity_free_env

from mesh_agents.wake import CODEX_CLIENT, CodexWaker, run_queue, thread_id_of
from mesh_core import Mesh

THREAD = "01a23468-b72e-7993-add9-9b5d28faf964"
# A tools/call's params as Codex 0.171.0 sent them (captured from the real CLI).
CODEX_CALL: dict[str, Any] = {
    "_meta": {
        "callId": "call_0003",
        "x-codex-turn-metadata": {"session_id": THREAD, "thread_id": THREAD},
        "threadId": THREAD,
        "sessionId": THREAD,
        "progressToken": 1,
    },
    "name": "check_inbox",
    "arguments": {},
}
CODEX_INIT = {"clientInfo": {"name": CODEX_CLIENT, "title": "Codex", "version": "0.171.0"}}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> bool:
        self.calls.append(list(argv))
        return True


@pytest.fixture
def fake_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `codex` on PATH that appends its arguments (JSON) to a log file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "codex.log"
    script = bin_dir / "codex"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return log


def setup(tmp_path: Path, **kw: Any) -> tuple[Mesh, str, str, CodexWaker, Recorder]:
    """A Codex session's mesh session, a peer, and its waker (a stand-in `codex` is on
    PATH through the `fake_codex` fixture every test here uses)."""
    mesh = Mesh(tmp_path / "mesh.db")
    me = mesh.register("codexrepo", kind="agent").session_id
    peer = mesh.register("peer", kind="cli").session_id
    rec = Recorder()
    waker = CodexWaker(
        mesh.path, lambda: me, os.getpid(), runner=kw.pop("runner", rec), delay=0.0, **kw
    )
    return mesh, me, peer, waker, rec


def codex_session(waker: CodexWaker) -> None:
    waker.observe("initialize", CODEX_INIT)
    waker.observe("tools/call", CODEX_CALL)
    waker.close()  # the tests call check() themselves


def test_thread_id_comes_from_the_tool_call_meta() -> None:
    assert thread_id_of(CODEX_CALL) == THREAD
    assert thread_id_of({"_meta": {"threadId": "--remote=ws://x"}}) is None  # not an id
    assert thread_id_of({"_meta": {"threadId": 7}}) is None
    assert thread_id_of({"name": "check_inbox"}) is None
    assert thread_id_of(None) is None


def test_mail_waiting_queues_one_notice_and_marks_nothing_read(
    tmp_path: Path, fake_codex: Path
) -> None:
    mesh, me, peer, waker, rec = setup(tmp_path)
    codex_session(waker)
    sent = mesh.send(peer, "codexrepo", "secret body text --thread evil")
    assert waker.check(mesh, now=100.0)
    assert len(rec.calls) == 1
    argv = rec.calls[0]
    assert argv[1:5] == ["queue", "--thread", THREAD, "--message"]
    assert "1 unread message from other agents wait" in argv[5]
    assert "check_inbox" in argv[5]
    assert "secret body" not in " ".join(argv)  # never the message text
    assert [m.message_id for m in mesh.peek_inbox(me)] == [sent.message_id]  # still unread


def test_a_flood_queues_one_turn_per_interval(tmp_path: Path, fake_codex: Path) -> None:
    mesh, _, _, waker, rec = setup(tmp_path, interval=60.0)
    codex_session(waker)
    senders = [mesh.register(f"peer{n}", kind="cli").session_id for n in range(13)]
    for i in range(100):  # ten a sender: more trips the sender's rate limit
        mesh.send(senders[i // 10], "codexrepo", f"flood {i}")
    assert waker.check(mesh, now=100.0)
    assert "100 unread messages" in rec.calls[0][5]
    for n, moment in enumerate((101.0, 130.0, 159.0)):
        mesh.send(senders[10 + n], "codexrepo", "more")
        assert not waker.check(mesh, now=moment)
    assert len(rec.calls) == 1
    # Past the interval, mail newer than the last wake gets one more.
    assert waker.check(mesh, now=161.0)
    assert len(rec.calls) == 2


def test_no_second_wake_for_mail_already_woken_for(tmp_path: Path, fake_codex: Path) -> None:
    mesh, _, peer, waker, rec = setup(tmp_path, interval=10.0)
    codex_session(waker)
    mesh.send(peer, "codexrepo", "one")
    assert waker.check(mesh, now=100.0)
    assert not waker.check(mesh, now=500.0)  # the same mail, still unread: once is enough
    assert len(rec.calls) == 1


def test_fresh_mail_waits_for_the_delay(tmp_path: Path, fake_codex: Path) -> None:
    mesh, _, peer, waker, rec = setup(tmp_path)
    waker.delay = 3600.0  # a running turn gets this long to take it first
    codex_session(waker)
    mesh.send(peer, "codexrepo", "just now")
    assert not waker.check(mesh, now=100.0)
    assert rec.calls == []


@pytest.mark.parametrize(
    "init, call, enabled",
    [
        ({"clientInfo": {"name": "claude-code"}}, CODEX_CALL, True),  # not Codex
        (CODEX_INIT, {"name": "check_inbox", "arguments": {}}, True),  # no thread id yet
        (CODEX_INIT, CODEX_CALL, False),  # --no-wake
    ],
)
def test_no_wake_without_codex_a_thread_or_when_off(
    tmp_path: Path, fake_codex: Path, init: dict[str, Any], call: dict[str, Any], enabled: bool
) -> None:
    mesh, _, peer, waker, rec = setup(tmp_path, enabled=enabled)
    waker.observe("initialize", init)
    waker.observe("tools/call", call)
    waker.close()
    mesh.send(peer, "codexrepo", "hello")
    assert not waker.check(mesh, now=100.0)
    assert rec.calls == []


def test_empty_inbox_queues_nothing(tmp_path: Path, fake_codex: Path) -> None:
    mesh, _, _, waker, rec = setup(tmp_path)
    codex_session(waker)
    assert not waker.check(mesh, now=100.0)
    assert rec.calls == []


def test_a_failed_queue_is_retried_after_a_pause_not_at_once(
    tmp_path: Path, fake_codex: Path
) -> None:
    failures: list[list[str]] = []

    def failing(argv: Sequence[str], env: Mapping[str, str]) -> bool:
        failures.append(list(argv))
        return False

    mesh, _, peer, waker, _ = setup(tmp_path, runner=failing, interval=60.0)
    codex_session(waker)
    mesh.send(peer, "codexrepo", "hello")
    assert not waker.check(mesh, now=100.0)
    assert not waker.check(mesh, now=105.0)  # not before RETRY
    assert len(failures) == 1
    assert not waker.check(mesh, now=111.0)  # tried again, failed again
    assert len(failures) == 2
    assert not waker.check(mesh, now=122.0)  # the third failure in a row: give up
    for moment in (200.0, 1000.0):
        mesh.send(peer, "codexrepo", "still there?")
        assert not waker.check(mesh, now=moment)
    assert len(failures) == 3


def test_the_real_command_runs_codex_on_path(tmp_path: Path, fake_codex: Path) -> None:
    """run_queue starts a real process: the `codex` found on PATH (this host process is
    not Codex) gets the queue command line."""
    mesh, _, peer, waker, _ = setup(tmp_path, runner=run_queue)
    codex_session(waker)
    mesh.send(peer, "codexrepo", "hello")
    assert waker.check(mesh, now=100.0)
    logged = [json.loads(line) for line in fake_codex.read_text().splitlines()]
    assert len(logged) == 1
    assert logged[0][:3] == ["queue", "--thread", THREAD]


def test_the_background_thread_wakes_on_new_mail(tmp_path: Path, fake_codex: Path) -> None:
    """As `mesh mcp` runs it: observe, then notify on each change; the thread queues."""
    mesh, _, peer, waker, rec = setup(tmp_path)
    waker.observe("initialize", CODEX_INIT)
    waker.observe("tools/call", CODEX_CALL)
    try:
        mesh.send(peer, "codexrepo", "hello")
        waker.notify()
        deadline = time.monotonic() + 10
        while not rec.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(rec.calls) == 1
    finally:
        waker.close()


def _line(proc: subprocess.Popen[str], payload: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", **payload}) + "\n")
    proc.stdin.flush()


def _answer(proc: subprocess.Popen[str], request_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    for raw in proc.stdout:
        message = json.loads(raw)
        if message.get("id") == request_id:
            return dict(message)
    raise AssertionError(f"mesh mcp closed before answering {request_id}")


@pytest.mark.parametrize("no_wake", [False, True])
def test_mesh_mcp_of_a_codex_session_queues_a_wake_on_new_mail(
    tmp_path: Path, fake_codex: Path, no_wake: bool
) -> None:
    """A real `mesh mcp` process, spoken to as Codex 0.171 does (its client name, then a
    tools/call whose `_meta` holds the thread id): mail sent afterwards makes it run the
    `codex` on PATH with `queue --thread …`, marking nothing read; `--no-wake` never."""
    db = tmp_path / "mesh.db"
    folder = tmp_path / "codexrepo"
    folder.mkdir()
    env = identity_free_env()
    argv = [sys.executable, "-m", "mesh_cli", "--db", str(db), "mcp", "--name", "codexrepo"]
    proc = subprocess.Popen(
        [*argv, *(["--no-wake"] if no_wake else [])],
        cwd=folder,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, **CODEX_INIT}
        _line(proc, {"id": 0, "method": "initialize", "params": init})
        _answer(proc, 0)
        _line(proc, {"method": "notifications/initialized"})
        _line(proc, {"id": 1, "method": "tools/call", "params": CODEX_CALL})
        assert "result" in _answer(proc, 1)
        with Mesh(db) as mesh:
            peer = mesh.register("peer", kind="cli").session_id
            sent = mesh.send(peer, "codexrepo", "do not put me on a command line")
            deadline = time.monotonic() + (8 if no_wake else 20)
            while time.monotonic() < deadline and not fake_codex.exists():
                time.sleep(0.1)
            assert not mesh.get(sent.message_id).read
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    if no_wake:
        assert not fake_codex.exists()
        return
    logged = [json.loads(line) for line in fake_codex.read_text().splitlines()]
    assert len(logged) == 1
    assert logged[0][:4] == ["queue", "--thread", THREAD, "--message"]
    assert "do not put me" not in logged[0][4] and "check_inbox" in logged[0][4]

"""Wake an idle Codex session when mail arrives: `codex queue` (docs/contract.md §5.2.6).

Codex 0.171 has a documented way to hand input to a running session from outside:
`codex queue --thread ID --message TEXT`. The host suite measured it on the real CLI: a
running interactive session (the TUI, or `codex app-server`) that is idle starts a turn
with the queued text at once; during a turn the text waits until that turn ends. No
other host of ours has such a command (Copilot's extension pushes with `session.send`).

`mesh mcp` of a Codex session uses it: when unread mail waits, it queues the same
fixed notice a tool result ends with ("N unread messages … call check_inbox") — never
a message's text on a command line — and marks nothing read; the model then takes the
mail with check_inbox (or the `UserPromptSubmit` hook hands it over). Bounded: a wake
only for mail newer than the last wake, after the mail stayed unread `DELAY` seconds
(a running turn usually takes it first), and at most one per `INTERVAL` (a failed
`codex queue` is tried again `RETRY` seconds later; after `GIVE_UP` failures in a row,
as with a Codex that has no `queue`, this server stops trying).

What it needs from Codex: the client's name in `initialize` (`codex-mcp-client`), and the
session's thread id, which Codex sends in every `tools/call` `_meta` (`threadId`) — so a
session is woken only once it has called one of our tools (the server's instructions
tell it to check its inbox first). The `codex` binary is the host process's own
executable; `CODEX_HOME` is the host's, since Codex forwards none of its environment.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mesh_core.clock import parse_ts_or_none
from mesh_core.delivery import unread_notice
from mesh_core.mesh import Mesh

log = logging.getLogger(__name__)

CODEX_CLIENT = "codex-mcp-client"
DELAY = 3.0  # seconds mail stays unread before a wake: a running turn takes it first
INTERVAL = 60.0  # at most one wake per this many seconds, however many messages land
RETRY = 10.0  # after a `codex queue` that failed, try again this much later
GIVE_UP = 3  # failures in a row after which this server stops trying (a Codex without it)
QUEUE_TIMEOUT = 30.0
PEEK = 1000  # unread messages looked at for the newest id
THREAD_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{7,63}$")  # a Codex thread UUID

Runner = Callable[[Sequence[str], Mapping[str, str]], bool]


def thread_id_of(params: Mapping[str, Any] | None) -> str | None:
    """The Codex thread id a `tools/call` carries in `_meta`, if it looks like one."""
    meta = (params or {}).get("_meta")
    if not isinstance(meta, Mapping):
        return None
    turn = meta.get("x-codex-turn-metadata")
    candidates = [
        meta.get("threadId"),
        turn.get("thread_id") if isinstance(turn, Mapping) else None,
    ]
    for value in candidates:
        if isinstance(value, str) and THREAD_ID.match(value):
            return value
    return None


def host_codex(host_pid: int) -> tuple[str | None, dict[str, str]]:
    """The host's `codex` executable and the environment a `codex queue` needs (the
    host's CODEX_HOME): read from /proc where there is one, else `codex` on PATH."""
    env = dict(os.environ)
    exe: str | None = None
    proc = Path("/proc") / str(host_pid)
    try:
        target = os.readlink(proc / "exe")
        if "codex" in Path(target).name:
            exe = target
        for item in (proc / "environ").read_bytes().split(b"\0"):
            if item.startswith(b"CODEX_HOME="):
                env["CODEX_HOME"] = os.fsdecode(item[len(b"CODEX_HOME=") :])
    except OSError:
        pass
    return exe or shutil.which("codex"), env


def run_queue(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Run `codex queue …`; True when Codex took it (exit 0)."""
    import subprocess  # Codex only: no cost at every server's start

    try:
        done = subprocess.run(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=QUEUE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("codex queue failed: %s", exc)
        return False
    if done.returncode != 0:
        log.warning("codex queue exited %s: %s", done.returncode, done.stderr.strip()[-300:])
    return done.returncode == 0


class CodexWaker:
    """Queues a wake notice into this server's Codex session when mail waits unread.

    `observe` is fed every inbound MCP message (learns the client and the thread id);
    `notify` is called when the database changed. The checks run on a thread of their
    own with their own connection, so neither the MCP loop nor the participant waits on
    a `codex queue` process.
    """

    def __init__(
        self,
        db: Path,
        session_id: Callable[[], str],
        host_pid: int,
        *,
        enabled: bool = True,
        runner: Runner = run_queue,
        delay: float = DELAY,
        interval: float = INTERVAL,
    ) -> None:
        self.db = db
        self.session_id = session_id
        self.host_pid = host_pid
        self.enabled = enabled
        self.runner = runner
        self.delay = delay
        self.interval = interval
        self.is_codex = False
        self.thread_id: str | None = None
        self.wakes = 0
        self._woken_up_to = 0  # newest message id a wake was queued for
        self._last_wake = float("-inf")
        self._retry_at = float("-inf")
        self._failures = 0
        self._event = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, method: str, params: Mapping[str, Any] | None) -> None:
        if not self.enabled:
            return
        if method == "initialize":
            info = (params or {}).get("clientInfo")
            self.is_codex = isinstance(info, Mapping) and info.get("name") == CODEX_CLIENT
        elif method == "tools/call" and self.is_codex:
            found = thread_id_of(params)
            if found is not None and found != self.thread_id:
                self.thread_id = found
                self._ensure_thread()
                self.notify()

    def notify(self) -> None:
        self._event.set()

    def close(self) -> None:
        self._stop.set()
        self._event.set()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="codex-wake", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        mesh: Mesh | None = None
        try:
            while not self._stop.is_set():
                self._event.wait(timeout=max(self.delay, 1.0))
                self._event.clear()
                if self._stop.is_set():
                    return
                try:
                    mesh = mesh or Mesh(self.db)
                    self.check(mesh)
                except Exception:  # a wake is a courtesy: never take the server down
                    log.exception("codex wake check failed")
        finally:
            if mesh is not None:
                mesh.close()

    def check(self, mesh: Mesh, now: float | None = None) -> bool:
        """Queue one wake if mail newer than the last wake has waited `delay` seconds
        and the last wake is `interval` old. True when a wake was queued."""
        thread = self.thread_id
        if not (self.enabled and self.is_codex and thread):
            return False
        moment = time.monotonic() if now is None else now
        if moment - self._last_wake < self.interval or moment < self._retry_at:
            return False
        # Urgent first, then oldest: a wide view so the newest is in it.
        waiting = mesh.peek_inbox(self.session_id(), limit=PEEK)
        newest = max((m.message_id for m in waiting), default=0)
        if newest <= self._woken_up_to:
            return False
        current = mesh.now()
        if all(_age(current, m.created_at) < self.delay for m in waiting):
            return False  # the loop looks again within `delay`
        notice = unread_notice(mesh, self.session_id())
        if notice is None:
            return False
        exe, env = host_codex(self.host_pid)
        if exe is None:
            log.warning("no codex executable found: cannot wake the session")
            return False
        argv = [exe, "queue", "--thread", thread, "--message", notice]
        if not self.runner(argv, env):
            self._retry_at = moment + RETRY
            self._failures += 1
            if self._failures >= GIVE_UP:
                log.warning("codex queue failed %s times: no more wakes", self._failures)
                self.enabled = False
            return False
        self._failures = 0
        self._last_wake = moment
        self._woken_up_to = newest
        self.wakes += 1
        return True


def _age(now: str, created_at: str) -> float:
    """Seconds between two of the store's timestamps (0 when one is unreadable: another
    client wrote it, and a wake then waits for the next check)."""
    start, end = parse_ts_or_none(created_at), parse_ts_or_none(now)
    if start is None or end is None:
        return 0.0
    return (end - start).total_seconds()

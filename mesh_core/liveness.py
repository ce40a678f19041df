"""Is the process behind a session still there? (docs/contract.md §3, "marked stopped")

A session records the pid, host and start time of its process (and of its host tool, for
hooks and `mesh mcp`). A session of this machine whose process is gone, or whose pid now
belongs to a newer process, is dead: any participant that notices marks it stopped, so
its mail moves to a live session instead of waiting on nobody.
"""

from __future__ import annotations

import os
import select
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Parents of a hook that are only the shell the host ran the command line in.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "busybox", "env", "timeout"})


def _host_name() -> str:
    """This machine's name, as `socket.gethostname()` gives it, without importing socket
    (a cost on every command's start): on POSIX both read uname's node name."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


_HOST = _host_name()


def this_host() -> str:
    return _HOST


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat):
    with the pid, it names one process, so a reused pid is not taken for the old one.
    None where /proc is not there (then the pid alone is checked)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _parent(pid: int) -> tuple[int, str] | None:
    """(parent pid, parent's command name) from /proc, None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    _, _, tail = stat.rpartition(")")
    fields = tail.split()
    if len(fields) < 2:
        return None
    ppid = int(fields[1])
    try:
        name = Path(f"/proc/{ppid}/comm").read_text().strip()
    except OSError:
        name = ""
    return ppid, name


def host_process() -> int:
    """The pid of the tool that started this process: the parent, past any shell the
    host ran our command line in (hooks run as `sh -c 'mesh hook …'`)."""
    pid = os.getpid()
    parent = os.getppid()
    for _ in range(8):
        found = _parent(pid)
        if found is None:
            return parent
        ppid, name = found
        if name not in SHELLS or ppid <= 1:
            return ppid
        pid = ppid
    return parent


def process_facts(pid: int) -> dict[str, Any]:
    """What a session records of a process so that liveness can be checked later."""
    facts: dict[str, Any] = {"pid": pid, "host": _HOST}
    start = process_start(pid)
    if start is not None:
        facts["pid_start"] = start
    return facts


def is_dead(metadata: Mapping[str, Any]) -> bool:
    """True only when we know: the session is of this host and its process is gone or
    replaced. A session of another host, or without a pid, is never judged here."""
    pid = metadata.get("pid")
    if metadata.get("host") != _HOST or not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if pid <= 0:
        return False
    recorded = metadata.get("pid_start")
    if isinstance(recorded, str):
        known = _HELD.exited((pid, recorded))
        if known is not None:
            return known
    dead = _judge(pid, recorded)
    if not dead and isinstance(recorded, str):
        _HELD.hold(pid, recorded)
    return dead


def _judge(pid: int, recorded: object) -> bool:
    """The full check: the pid answers, is not a zombie, and started when recorded."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    stat = _read_stat(pid)
    if stat is None:
        return False  # no /proc here: the pid answered, take it as alive
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] == "Z":
        return True  # exited, not yet reaped by its parent
    return isinstance(recorded, str) and len(fields) > 19 and fields[19] != recorded


class _Held:
    """Processes found alive, each held by a pidfd (Linux): the kernel makes it readable
    when that very process exits (a zombie included), so the next check of it is one
    poll, exact, with no time-based cache. A pid reused by a newer process is another
    process: its pidfd was never this one's. At most KEEP are held (the least recently
    checked is let go); where pidfds do not exist, nothing is held and every check is
    the full one."""

    KEEP = 32

    def __init__(self) -> None:
        self._fds: OrderedDict[tuple[int, str], int] = OrderedDict()
        self._lock = threading.Lock()  # no fd is polled while another thread closes it
        self._poll = _new_poll()  # every held fd, registered for POLLIN

    def exited(self, key: tuple[int, str]) -> bool | None:
        """Whether the held process of `key` exited; None if it is not held."""
        with self._lock:
            fd = self._fds.get(key)
            if fd is None:
                return None
            if not self._exited(fd):
                self._fds.move_to_end(key)
                return False
            del self._fds[key]
            self._close(fd)
            return True

    def _exited(self, fd: int) -> bool:
        """Is held `fd` readable? One poll of every held fd: a persistent poll set costs
        less than building select's fd sets for one fd on each check."""
        if self._poll is None:
            return _readable(fd)
        for ready, _ in self._poll.poll(0):
            if ready == fd:
                return True
        return False

    def _close(self, fd: int) -> None:
        if self._poll is not None:
            self._poll.unregister(fd)
        os.close(fd)

    def hold(self, pid: int, recorded: str) -> None:
        """Hold the process `pid` if it is the one that started at `recorded`: checked
        after the pidfd is open, so the pidfd cannot be a newer process's."""
        opener = getattr(os, "pidfd_open", None)
        if opener is None:
            return
        try:
            fd = opener(pid)
        except OSError:  # no pidfds in this kernel, or the process just went
            return
        stat = _read_stat(pid)
        fields = stat.rsplit(")", 1)[-1].split() if stat else []
        same = len(fields) > 19 and fields[0] != "Z" and fields[19] == recorded
        if not same or _readable(fd):
            os.close(fd)
            return
        with self._lock:
            old = self._fds.pop((pid, recorded), None)
            if old is not None:
                self._close(old)
            self._fds[(pid, recorded)] = fd
            if self._poll is not None:
                self._poll.register(fd, select.POLLIN)
            while len(self._fds) > self.KEEP:
                _, evicted = self._fds.popitem(last=False)
                self._close(evicted)

    def forget(self) -> None:
        """In a forked child: let go of the parent's copies (and of its lock's state)."""
        self._lock = threading.Lock()
        self._poll = _new_poll()
        fds, self._fds = self._fds, OrderedDict()
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _new_poll() -> select.poll | None:
    return select.poll() if hasattr(select, "poll") else None


_HELD = _Held()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HELD.forget)


def _read_stat(pid: int) -> str | None:
    """/proc/PID/stat as text, None if it cannot be read. Plain os calls: every send
    checks its recipient's process, and pathlib's and io's layers cost more than the read."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)

"""Is the process behind a session still there? (docs/contract.md §3, "marked stopped")

A session records the pid, host and start time of its process (and of its host tool, for
hooks and `mesh mcp`). A session of this machine whose process is gone, or whose pid now
belongs to a newer process, is dead: any participant that notices marks it stopped, so
its mail moves to a live session instead of waiting on nobody.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Parents of a hook that are only the shell the host ran the command line in.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "busybox", "env", "timeout"})
_HOST = socket.gethostname()


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
    recorded = metadata.get("pid_start")
    return isinstance(recorded, str) and len(fields) > 19 and fields[19] != recorded


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

"""Every default of the mesh in one place, and where the database lives.

The rules (caps, windows, intervals) are fields of one frozen dataclass so that the CLI,
the MCP server and the TUI all enforce the same numbers, and tests can shrink them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DB_ENV = "AGENT_MESH_DB"
NAME_ENV = "AGENT_MESH_NAME"
DEFAULT_DB_PATH = Path("~/.agent-mesh/agent-mesh.db")


@dataclass(frozen=True)
class MeshConfig:
    """The numbers behind docs/contract.md §3–§4 (seconds unless named otherwise)."""

    heartbeat_interval: float = 10.0
    poll_interval: float = 10.0
    stale_after: float = 30.0
    stop_after: float = 600.0
    cleanup_every: float = 60.0
    read_retention: float = 24 * 3600.0
    expire_after: float = 24 * 3600.0
    max_content_bytes: int = 10_240
    # Written into a file this process creates; from then on the file's numbers are the
    # mesh's limit for everyone (docs/contract.md §4.5), whatever later openers set here.
    rate_limit: int = 10
    rate_window: float = 60.0
    thread_window: float = 600.0
    flood_threshold: int = 50
    # One take (check_inbox, a hook, `mesh inbox`) hands over at most this many messages
    # and about this many bytes of rendered text; hosts cut long tool results.
    take_max_messages: int = 20
    take_max_bytes: int = 64_000
    # How often a participant checks PRAGMA data_version for other connections' commits
    # when it cannot watch the file system for them (mesh_core/watch.py says when). Each
    # check wakes a thread and costs CPU: shorter delivers sooner and costs more.
    watch_interval: float = 0.05
    # While the file-system watch runs, the data_version check that still runs on a timer:
    # the safety net for an event the watch misses. A participant whose watch has reported
    # a write lengthens it while nothing happens, doubling up to `watch_safety_max`, and
    # goes back to `watch_safety_interval` at the next commit of another process.
    watch_safety_interval: float = 1.0
    watch_safety_max: float = 5.0
    busy_timeout_ms: int = 5000
    # How long a write keeps retrying while another process holds the write lock
    # (busy_timeout already waits per attempt) before the user is told it is busy.
    write_retry: float = 60.0

    def with_overrides(self, **changes: Any) -> MeshConfig:
        """A copy with some fields changed (tests, `--interval`)."""
        return replace(self, **changes)


DEFAULT_CONFIG = MeshConfig()


def resolve_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--db PATH`, else `$AGENT_MESH_DB`, else `~/.agent-mesh/agent-mesh.db` (contract §2.1)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DB_PATH.expanduser()

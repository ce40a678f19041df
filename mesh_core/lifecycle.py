"""Who "you" are for one command or hook, and how long that session lives.

One policy for every front-end that acts for somebody without running a participant loop
of its own (the CLI's `--from`, the host hooks): find the session, borrow it for the
command, keep it beating through a long wait, and give back what was only borrowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import MeshError
from .host_sessions import HOST_SESSION_KEY
from .identity import default_person_name, identify
from .liveness import host_process, process_facts
from .mesh import Mesh
from .models import Agent
from .sessions import SessionClaim


def claim(
    mesh: Mesh, name: str | None, *, kind: str = "cli", client: str | None = None
) -> SessionClaim:
    """The session for workspace `name`; without a name, the person's default identity
    (the same as mesh-tui's). An empty name (an unset shell variable) is refused, never
    taken as the person."""
    return mesh.session_for(default_person_name() if name is None else name, kind, client)


@contextmanager
def borrowed(
    mesh: Mesh,
    name: str | None,
    *,
    client: str | None = None,
    on_release_error: Callable[[MeshError], None] | None = None,
) -> Iterator[Agent]:
    """Be `name` for one command. A session that was not active before is only borrowed:
    it is marked stopped again at exit, so a cron job's identity does not show as a live
    agent. A session that was already active (the person's TUI, say) is left running."""
    found = claim(mesh, name, client=client)
    try:
        yield found.agent
    finally:
        if not found.was_active:
            release(mesh, found.agent.session_id, on_release_error)


def release(
    mesh: Mesh, session_id: str, on_error: Callable[[MeshError], None] | None = None
) -> None:
    """Mark a borrowed session stopped; a failure is reported, not raised (the command's
    own result matters more)."""
    try:
        mesh.deregister(session_id)
    except MeshError as exc:
        if on_error is not None:
            on_error(exc)


def keep_alive(mesh: Mesh, session_id: str) -> Callable[[], bool]:
    """A `should_stop` hook for `wait_for_reply` that heartbeats on schedule, so a long
    wait does not show the waiting session as stale (it never asks to stop)."""
    next_beat = 0.0

    def beat() -> bool:
        nonlocal next_beat
        now = mesh.clock.now().timestamp()
        if now >= next_beat:
            mesh.heartbeat(session_id)
            next_beat = now + mesh.config.heartbeat_interval
        return False

    return beat


def host_metadata(host_pid: int, host_session_id: str | None = None) -> dict[str, Any]:
    """What a session records of the host tool it belongs to (and of the host's own
    session, when the host names it: see mesh_core.host_sessions)."""
    facts = process_facts(host_pid)
    meta: dict[str, Any] = {"host_pid": host_pid, "host_pid_start": facts.get("pid_start")}
    if host_session_id is not None:
        meta[HOST_SESSION_KEY] = host_session_id
    return meta


def hook_session(
    mesh: Mesh,
    cwd: str | os.PathLike[str] | None,
    client: str,
    host_session_id: str | None = None,
) -> Agent:
    """A host hook's session: the one its host session runs (its `mesh mcp`, keyed on the
    host's session id and pid), else one registered now for that host session, living as
    long as the host process. A stopped session is never revived: nobody may run it."""
    name = identify(cwd).name
    host_pid = host_process()
    found = mesh.host_session(name, host_pid, host_session_id)
    if found is not None:
        if found.metadata.get("client") == client:  # nobody else beats for it
            mesh.heartbeat(found.session_id)
        return found
    meta = {**process_facts(host_pid), **host_metadata(host_pid, host_session_id)}
    return mesh.register(name, kind="agent", client=client, cwd=cwd, metadata=meta)

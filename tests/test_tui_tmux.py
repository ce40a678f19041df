"""mesh-tui in a real terminal (tmux): closing the terminal, signals, the send key."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from tmux_util import Terminal, needs_tmux, wait_for

from mesh_core import Mesh
from mesh_core.models import Status

pytestmark = needs_tmux


def status_of(db: Path, session_id: str) -> Status:
    with Mesh(db) as mesh:
        return mesh.agent(session_id).status


@pytest.mark.parametrize("how", ["kill-session", "SIGTERM", "SIGHUP"])
def test_closing_the_terminal_or_a_signal_ends_it_within_2s(tmp_path: Path, how: str) -> None:
    db = tmp_path / "m.db"
    with Mesh(db) as mesh:
        mesh.register("agent-a")
        for n in range(30):
            peer = mesh.register(f"peer-{n:02d}").session_id
            mesh.send(peer, "agent-a", f"message {n}", new_thread=True)
    for run in range(3):
        term = Terminal(db, "root", (80, 24), tmp_path / "state", "--interval", "0.2")
        try:
            me = term.wait_registered()
            term.wait_screen("agent-a")
            term.keys("Tab", *["j"] * 12)  # scroll the thread list: repaints in flight
            if how == "kill-session":
                term.kill()
            else:
                os.kill(term.pid, getattr(signal, how))
            started = time.monotonic()
            wait_for(lambda t=term: not t.alive(), 5, f"mesh-tui to exit after {how}")
            took = time.monotonic() - started
            assert took < 2.0, f"run {run}: {how} took {took:.2f} s"
            assert status_of(db, me) is Status.STOPPED
        finally:
            term.kill()

"""Drive the real mesh-tui in a real terminal (tmux): keys in, screen out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from mesh_core import Mesh

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
MESH_TUI = str(Path(sys.executable).with_name("mesh-tui"))


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Terminal:
    """One tmux session running mesh-tui on `db` as `name`, at `size`, on a tmux server
    of its own (server options and paste buffers are the test's alone)."""

    def __init__(
        self, db: Path, name: str, size: tuple[int, int], state: Path, *extra: str
    ) -> None:
        self.session = f"mesh-tui-test-{uuid.uuid4().hex[:8]}"
        self.socket = self.session
        self.db = db
        self.name = name
        env = {
            **os.environ,
            "XDG_STATE_HOME": str(state),
            "TERM": "xterm-256color",
            "TEXTUAL_ANIMATIONS": "none",
        }
        command = " ".join([MESH_TUI, "--db", str(db), "--name", name, *extra])
        subprocess.run(
            [
                TMUX or "tmux",
                "-L",
                self.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                f"exec {command}",
            ],
            check=True,
            env=env,
        )
        self.pid = int(self.tmux("display-message", "-p", "-t", self.session, "#{pane_pid}"))

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            [TMUX or "tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def wait_screen(self, text: str, timeout: float = 15) -> str:
        """The screen once it shows `text`; on a timeout the error carries the last
        screen, so a failure in CI says what was there instead."""
        try:
            return str(wait_for(lambda: text in self.screen() and self.screen(), timeout, text))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen was:\n{self.screen()}") from None

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        # a zombie (exited, not yet reaped by tmux) is gone too
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def exited(self) -> bool:
        return not self.alive()

    def wait_registered(self, timeout: float = 20) -> str:
        def registered() -> str | None:
            with Mesh(self.db) as mesh:
                for agent in mesh.agents(status="active"):
                    if agent.agent_name == self.name:
                        return agent.session_id
            return None

        return str(wait_for(registered, timeout, f"{self.name} to register"))

    def kill(self) -> None:
        self.tmux("kill-session", "-t", self.session)

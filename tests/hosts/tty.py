"""What the interactive host runs share (idle.py, push.py, two_tuis.py): a host's TUI set up
as a user's, run in a pseudo-terminal, and ended.

A headless prompt cannot show what happens to a message sent while a session sits idle
between prompts; these runs start the real TUI, so they need a terminal that answers its
queries and a way to end it (and everything it started) whatever state it is in.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mesh_core import Mesh

from . import harness, hostbin


@dataclass
class Interactive:
    """One host set up as `mesh install` leaves it, with the mesh and a peer to send."""

    argv: list[str]
    version: str
    home: Path
    workspace: Path
    db: Path
    env: dict[str, str]
    mesh: Mesh
    peer: str  # the peer's session id


def prepare(tmp: Path, host: str, *install_options: str) -> tuple[Interactive, str]:
    """The host's command (hostbin.HostUnavailable if it cannot run here), a fresh home,
    workspace and mesh with a peer registered, and `mesh install <host>` run; also
    returns what the install printed."""
    argv = hostbin.command(hostbin.PACKAGES[host])
    home, workspace, db, env = harness.prepare(tmp)
    version = hostbin.version_of(argv, env)
    mesh = Mesh(db)
    peer = mesh.register(harness.PEER, kind="cli").session_id
    shown = harness.install(host, env, *install_options)
    return Interactive(argv, version, home, workspace, db, env, mesh, peer), shown


def trust_codex_project(home: Path, workspace: Path) -> None:
    """The user's one-time "trust this folder" answer in Codex's TUI."""
    config = home / ".codex" / "config.toml"
    config.write_text(config.read_text() + f'\n[projects."{workspace}"]\ntrust_level = "trusted"\n')


class Terminal:
    """The TUI's pseudo-terminal: keeps what it prints and answers its cursor queries."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.output = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)
            if b"\x1b[6n" in data:  # cursor position report
                os.write(self.fd, b"\x1b[1;1R")
            if b"\x1b[c" in data or b"\x1b[0c" in data:  # device attributes
                os.write(self.fd, b"\x1b[?62;c")

    def count(self, needle: bytes) -> int:
        return bytes(self.output).count(needle)

    def close(self) -> None:
        self._stop.set()


def spawn(
    argv: list[str], env: dict[str, str], cwd: Path, size: tuple[int, int] | None = None
) -> tuple[int, int, Terminal]:
    """Start `argv` in `cwd` on a new pseudo-terminal of `size` (rows, columns): a TUI that
    reads its size from a 0×0 terminal draws nothing, so give one where it matters."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the TUI, with the prompt a user would type
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    if size is not None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return pid, fd, Terminal(fd)


def end(pid: int, fd: int, term: Terminal) -> None:
    """SIGTERM the TUI's process group (its children too), SIGKILL after 5 s, then close
    its terminal."""
    term.close()
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    for _ in range(50):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)

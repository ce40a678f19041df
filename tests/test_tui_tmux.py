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
            wait_for(term.exited, 5, f"mesh-tui to exit after {how}")
            took = time.monotonic() - started
            assert took < 2.0, f"run {run}: {how} took {took:.2f} s"
            assert status_of(db, me) is Status.STOPPED
        finally:
            term.kill()


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
def test_in_a_real_terminal_send_key_title_and_a_live_writer(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """Typed into tmux while another process writes: ctrl+j sends exactly the draft on
    screen, the title counts the urgent message, the new thread shows up."""
    db = tmp_path / "m.db"
    with Mesh(db) as mesh:
        bot = mesh.register("api-server", description="the API").session_id
        # An older, read thread holds the cursor, so the urgent message's new thread is
        # not opened by the cursor landing on it (an opened thread counts as seen).
        earlier = mesh.register("root", kind="human").session_id
        mesh.send(bot, "root", "earlier, already read", new_thread=True)
        mesh.inbox(earlier)
        mesh.deregister(earlier)
    term = Terminal(db, "root", size, tmp_path / "state", "--interval", "0.5")
    try:
        term.wait_registered()
        term.wait_screen("api-server")
        with Mesh(db) as mesh:
            mesh.send(bot, "root", "payments are down", priority="urgent", new_thread=True)
        wait_for(
            lambda: (
                term.tmux("display-message", "-p", "-t", term.session, "#{pane_title}")
                == "(1) mesh-tui"
            ),
            15,
            "the title to count the urgent message",
        )
        term.wait_screen("payments are down")
        term.keys("Tab", "Enter")  # to the threads, open the newest
        term.keys("r")
        term.wait_screen("Reply in thread")
        # Typed letters are keys until the composer has focus ("o" opens the pager):
        # its footer entry says when it has.
        term.wait_screen("Leave (keeps draft)")
        term.keys("-l", "on it")
        term.keys("Enter")  # a newline in the draft, never a send
        term.keys("-l", "second line")
        term.keys("C-j")
        with Mesh(db) as mesh:

            def landed() -> list[str]:
                return [
                    r[0]
                    for r in mesh.connection().execute(
                        "SELECT content FROM agent_messages WHERE recipient_session_id = ?",
                        (bot,),
                    )
                ]

            try:
                wait_for(landed, 10, "the reply to land")
            except AssertionError:
                print(term.screen())
                raise
            time.sleep(0.5)
            assert landed() == ["on it\nsecond line"]
            mesh.send(bot, "root", "thanks, fixed now", new_thread=True)
        term.wait_screen("thanks, fixed now")
        screen = term.screen()
        assert len(screen.splitlines()) <= size[1]
        assert "agent-mesh" in screen.splitlines()[0]
    finally:
        term.kill()


def test_an_urgent_message_rings_the_bell_and_c_copies_with_osc52(tmp_path: Path) -> None:
    """In a real terminal: a normal message rings nothing, an urgent one sets tmux's bell
    flag; `c` on the message puts its text in tmux's paste buffer through OSC 52."""
    db = tmp_path / "m.db"
    with Mesh(db) as mesh:
        bot = mesh.register("api-server", description="the API").session_id
    term = Terminal(db, "root", (100, 30), tmp_path / "state", "--interval", "0.5")
    try:
        term.tmux("set-option", "-s", "set-clipboard", "on")
        term.wait_registered()
        term.wait_screen("api-server")

        def bell() -> str:
            return term.tmux("display-message", "-p", "-t", term.session, "#{window_bell_flag}")

        with Mesh(db) as mesh:
            mesh.send(bot, "root", "just so you know", new_thread=True)
        term.wait_screen("just so you know")
        time.sleep(0.5)
        assert bell() == "0"
        with Mesh(db) as mesh:
            mesh.send(bot, "root", "payments are down", priority="urgent", new_thread=True)
        wait_for(lambda: bell() == "1", 15, "the bell for the urgent message")
        assert term.tmux("list-buffers") == ""
        # the bell rings as the message arrives, the threads list follows on the refresh
        # it asks for: keys sent before that row is drawn would open the older thread
        term.wait_screen("‼  api-server")
        term.keys("Tab", "g", "Enter")  # to the threads, the newest (urgent), read it
        term.wait_screen("Thread #2")
        term.keys("c")
        copied = wait_for(
            lambda: term.tmux("show-buffer"), 10, "the copy to reach tmux's paste buffer"
        )
        assert copied == "payments are down"
    finally:
        term.kill()

"""mesh-tui under the conditions that crashed or hung it: scrolled lists re-ordered by
another writer, crashes, and signals."""

from __future__ import annotations

import io
import json
import stat
import threading
from pathlib import Path

import pytest
from tui_fixtures import build_world, settle, use_utc

from mesh_core import FixedClock, Mesh
from mesh_core.models import Status
from mesh_tui.app import MeshApp
from mesh_tui.driver import SafeWriterThread
from mesh_tui.state import Drafts
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList


def many_threads(path: Path, count: int = 24) -> tuple[Mesh, str, list[int]]:
    use_utc()
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(path, clock=clock)
    me = mesh.register("root", kind="human").session_id
    alice = mesh.register("alice").session_id
    roots = []
    for n in range(count):
        clock.advance(1)
        peer = mesh.register(f"agent-{n:02d}").session_id
        roots.append(mesh.send(peer, "alice", f"thread {n}", new_thread=True).message_id)
    del alice
    return mesh, me, roots


async def test_reorder_while_scrolled_does_not_crash(tmp_path: Path) -> None:
    """tab to threads, j x16 (the list scrolls), another process bumps an old thread."""
    mesh, me, roots = many_threads(tmp_path / "m.db")
    other = Mesh(mesh.path, clock=mesh.clock)
    app = MeshApp(mesh, live=False, session_id=me, name="root")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        threads = app.query_one(ThreadList)
        threads.focus()
        await pilot.press(*["j"] * 16)
        await settle(pilot)
        assert threads.scroll_y > 0
        alice = next(a.session_id for a in other.agents() if a.agent_name == "alice")
        for root in (roots[10], roots[3], roots[20]):
            other.reply(alice, root, "bump")
            app.request_refresh()
            await settle(pilot)
            await pilot.press("j", "k")
            await settle(pilot)
        assert threads.rows  # still alive, still showing rows
    other.close()
    mesh.close()


# -- a crash: exit 1, drafts kept, nothing private printed ----------------------------------


async def test_crash_exits_1_saves_draft_and_prints_no_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = build_world(tmp_path / "m.db")
    drafts_file = tmp_path / "state" / "tui-drafts.json"
    app = MeshApp(
        world.mesh,
        live=False,
        session_id=world.me,
        name="alice",
        drafts=Drafts(drafts_file, str(world.mesh.path)),
        crash_dir=tmp_path / "state",
    )
    secret = "the launch code is 0000"

    def boom() -> None:
        body = secret  # a local holding message text, as a real handler would have
        raise RuntimeError(f"failed on {body}")

    with pytest.raises(RuntimeError):
        async with app.run_test(size=(120, 36)) as pilot:
            await settle(pilot)
            app.query_one(Roster).select_key(world.ids["api-server"])
            await pilot.press("n", *"half-written reply")
            app.call_later(boom)
            await pilot.pause()
            await pilot.pause()
    assert app.return_code == 1
    printed = capsys.readouterr().err
    assert "RuntimeError" in printed and "unsent drafts are saved" in printed
    assert secret not in printed and "body" not in printed and "locals" not in printed
    assert str(drafts_file) in app.crash_text
    assert json.loads(drafts_file.read_text())[str(world.mesh.path)] == {
        "to:api-server": "half-written reply"
    }
    assert stat.S_IMODE(drafts_file.stat().st_mode) == 0o600
    assert app.crash_report is not None
    assert stat.S_IMODE(app.crash_report.stat().st_mode) == 0o600
    assert world.mesh.agent(world.me).status is Status.STOPPED
    world.mesh.close()


# -- a closed terminal cannot wedge the output -----------------------------------------------


class DeadTerminal(io.StringIO):
    """A terminal that went away: every write fails as a closed pty's does."""

    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")

    def flush(self) -> None:
        raise OSError(5, "Input/output error")


def test_writer_never_blocks_after_the_terminal_is_gone() -> None:
    """Textual's writer dies on the first EIO; 30 more writes then block the caller (the
    event loop) for good. Ours keeps draining."""
    writer = SafeWriterThread(DeadTerminal())
    writer.start()
    done = threading.Event()

    def flood() -> None:
        for _ in range(500):
            writer.write("\x1b[2Jframe")
        writer.stop()
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(10), "writes blocked once the terminal was gone"

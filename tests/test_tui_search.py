"""`/` finds threads by message text too, from the TUI's own index (nothing added to the
mesh database), and says when nothing matches."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input
from tui_fixtures import settle, use_utc

from mesh_core import FixedClock, Mesh
from mesh_tui.app import MeshApp
from mesh_tui.search import SearchIndex
from mesh_tui.widgets.threads import ThreadList


def schema(mesh: Mesh) -> list[tuple[str, str]]:
    return [tuple(r) for r in mesh.connection().execute("SELECT type, name FROM sqlite_master")]


async def test_filter_finds_old_threads_by_text_and_says_no_matches(tmp_path: Path) -> None:
    use_utc()
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(tmp_path / "m.db", clock=clock)
    me = mesh.register("alice", kind="human").session_id
    a = mesh.register("api").session_id
    root = mesh.send(a, "alice", "deploy plan", new_thread=True)
    clock.advance(5)
    mesh.reply(me, root.message_id, "first step\nthe Flux-Capacitor needs a restart\nthanks")
    clock.advance(5)
    mesh.reply(a, root.message_id, "done")
    for n in range(120):  # push it out of the newest 100 threads
        clock.advance(1)
        peer = mesh.register(f"peer-{n:03d}").session_id
        mesh.send(peer, "api", f"unrelated {n}", new_thread=True)
    before = schema(mesh)
    index = SearchIndex(tmp_path / "state" / "search.db")
    app = MeshApp(mesh, live=False, session_id=me, name="alice", search=index)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        threads = app.query_one(ThreadList)
        assert str(root.message_id) not in threads.keys  # too old for the list
        await pilot.press("slash", *"flux-cap")  # case-insensitive, mid-message
        await settle(pilot)
        assert threads.keys == [str(root.message_id)]
        assert "1 matching" in str(threads.border_title)
        app.query_one("#filter", Input).value = "no-such-words"
        await settle(pilot)
        assert threads.row_count == 0
        assert "no matches for “no-such-words”" in str(threads.border_title)
        # a message sent now is found by the next search
        mesh.send(a, "alice", "late news: Flux-Capacitor fixed", new_thread=True)
        app.query_one("#filter", Input).value = "flux-capacitor fixed"
        await settle(pilot)
        assert len(threads.keys) == 1 and threads.keys != [str(root.message_id)]
    assert schema(mesh) == before  # nothing added to the shared database
    assert index.indexed_up_to(mesh) == max(
        r[0] for r in mesh.connection().execute("SELECT message_id FROM agent_messages")
    )
    index.close()
    mesh.close()


def test_the_index_drops_what_the_cleanup_purged(tmp_path: Path) -> None:
    """A message the mesh's clean-up purged no longer matches, and its text is not left
    in the index file; the walk runs once per clean-up."""
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(tmp_path / "m.db", clock=clock)
    me = mesh.register("alice", kind="human").session_id
    api = mesh.register("api").session_id
    old = mesh.send(api, "alice", "the secret rollout plan alpha", new_thread=True)
    kept = mesh.send(api, "alice", "unread note beta", new_thread=True)
    mesh.mark_read(me, [old.message_id])  # read: purged after the retention
    path = tmp_path / "state" / "search.db"
    index = SearchIndex(path)
    while index.catch_up(mesh):
        pass
    assert index.threads_matching("plan alpha") == [old.thread_id]
    assert index.prune(mesh) == 0  # no clean-up purged anything yet
    clock.advance(mesh.config.read_retention + 60)
    mesh.heartbeat(me)
    mesh.heartbeat(api)
    report = mesh.cleanup()
    assert report.purged_read == 1
    assert index.threads_matching("plan alpha") == [old.thread_id]  # stale until pruned
    assert index.prune(mesh) == 1
    assert index.threads_matching("plan alpha") == []
    assert index.threads_matching("note beta") == [kept.thread_id]
    assert index.prune(mesh) == 0  # once per clean-up
    index.close()
    assert b"secret rollout" not in path.read_bytes()
    mesh.close()


async def test_the_app_prunes_its_index_at_start(tmp_path: Path) -> None:
    use_utc()
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(tmp_path / "m.db", clock=clock)
    me = mesh.register("alice", kind="human").session_id
    api = mesh.register("api").session_id
    old = mesh.send(api, "alice", "the rollout plan alpha", new_thread=True)
    mesh.send(api, "alice", "unread, kept", new_thread=True)
    mesh.mark_read(me, [old.message_id])
    index = SearchIndex(tmp_path / "state" / "search.db")
    while index.catch_up(mesh):
        pass
    clock.advance(mesh.config.read_retention + 60)
    mesh.heartbeat(me)
    mesh.cleanup()
    app = MeshApp(mesh, live=False, session_id=me, name="alice", search=index)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert index.threads_matching("plan alpha") == []
    index.close()
    mesh.close()

"""`/` finds threads by message text too, from the TUI's own index (nothing added to the
mesh database), and says when nothing matches."""

from __future__ import annotations

import threading
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


def test_a_batch_is_the_same_few_statements_whatever_its_size(tmp_path: Path) -> None:
    """The copy runs inside SQLite: a batch of 400 messages costs the statements a batch
    of 10 does (a statement per message held the interpreter lock once per message,
    and the app's keys waited through a big mesh's first build)."""
    mesh = Mesh(tmp_path / "m.db")
    a = mesh.register("api").session_id
    b = mesh.register("web").session_id
    with mesh.connection() as conn:  # 800 messages, written as another client would
        conn.executemany(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content,"
            " created_at) VALUES (?, ?, ?, '2026-11-23T14:00:00.000Z')",
            [(a, b, f"note number {n}") for n in range(800)],
        )
    counts = {}
    for batch in (10, 400):
        index = SearchIndex(None)
        statements: list[str] = []
        index._db.set_trace_callback(statements.append)
        assert index.catch_up(mesh, batch=batch) == batch
        # ours, not the ones FTS5 runs inside SQLite on its own tables ("-- ...")
        counts[batch] = sum(1 for sql in statements if not sql.startswith("--"))
        assert index.threads_matching(f"number {batch - 1}") != []
        index.close()
    assert counts[10] == counts[400] <= 8, counts
    mesh.close()


def test_any_value_another_client_stored_is_indexed_as_the_mesh_reads_it(
    tmp_path: Path,
) -> None:
    """Text of another type is searched as its text form; a parent id that is not a
    positive integer makes the message its own thread, as everywhere else."""
    mesh = Mesh(tmp_path / "m.db")
    a = mesh.register("api").session_id
    rows = [
        (b"blob words here", 7),
        (12345678, "seven"),
        ("real parent text", None),
        ("odd parent zebra", -3),
        ("float parent quokka", 1.5),
    ]
    with mesh.connection() as conn:
        for content, parent in rows:
            conn.execute(
                "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content,"
                " original_message_id, created_at) VALUES (?, ?, ?, ?, 'x')",
                (a, a, content, parent),
            )
    ids = [
        r[0] for r in mesh.connection().execute("SELECT message_id FROM agent_messages ORDER BY 1")
    ]
    index = SearchIndex(None)
    while index.catch_up(mesh):
        pass
    assert index.threads_matching("blob words") == [7]
    assert index.threads_matching("345678") == [ids[1]]
    assert index.threads_matching("real parent") == [ids[2]]
    assert index.threads_matching("zebra") == [ids[3]]
    assert index.threads_matching("quokka") == [ids[4]]
    index.close()
    mesh.close()


def test_a_replaced_mesh_file_is_indexed_afresh(tmp_path: Path) -> None:
    """The mesh is read through a file the index opened; a new file at the same path
    (restored, recreated) is opened again and indexed from its start."""
    path = tmp_path / "m.db"
    mesh = Mesh(path)
    a = mesh.register("api").session_id
    b = mesh.register("web").session_id
    for n in range(5):
        mesh.send(a, "web", f"old file words {n}", new_thread=True)
    index = SearchIndex(None)
    while index.catch_up(mesh):
        pass
    assert index.threads_matching("old file words")
    mesh.close()
    other = Mesh(tmp_path / "other.db")
    c = other.register("api").session_id
    other.register("web")
    other.send(c, "web", "new file words", new_thread=True)
    other.close()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            Path(f"{path}{suffix}").unlink()
    Path(tmp_path / "other.db").rename(path)
    mesh = Mesh(path)
    while index.catch_up(mesh):
        pass
    assert index.threads_matching("new file words") != []
    assert index.threads_matching("old file words") == []
    assert b not in {
        r[0] for r in mesh.connection().execute("SELECT session_id FROM agent_sessions")
    }
    index.close()
    mesh.close()


class GatedIndex(SearchIndex):
    """An index whose batches wait for the test: each call records whether the app had
    shown its first screen, and after the first batch the build holds until released."""

    def __init__(self, app_box: list[MeshApp]) -> None:
        super().__init__(None)
        self.app_box = app_box
        self.calls: list[bool] = []  # per call: the first screen was on when it came
        self.release = threading.Event()

    def indexed_up_to(self, mesh: Mesh) -> int:
        self.calls.append(bool(self.app_box) and self.app_box[0].snapshot is not None)
        return super().indexed_up_to(mesh)

    def catch_up(self, mesh: Mesh, batch: int = 50) -> int:
        if threading.current_thread().name == "mesh-tui-index" and self.calls.count(True) > 2:
            self.release.wait(10)
        return super().catch_up(mesh, batch=50)


def many_threads(mesh: Mesh, me: str, count: int) -> list[int]:
    """`count` threads to the person, the oldest with its own word ("aardvark")."""
    roots = []
    for n in range(count):
        peer = mesh.register(f"peer-{n:03d}").session_id
        text = "the aardvark report" if n == 0 else f"routine note {n}"
        roots.append(mesh.send(peer, "alice", text, new_thread=True).thread_id)
    return roots


async def test_the_index_starts_after_the_first_screen(tmp_path: Path) -> None:
    """The first build reads every message; it must not compete with the read the person
    is waiting for, so it starts once the first screen is on."""
    use_utc()
    mesh = Mesh(tmp_path / "m.db")
    me = mesh.register("alice", kind="human").session_id
    many_threads(mesh, me, 30)
    box: list[MeshApp] = []
    index = GatedIndex(box)
    index.release.set()
    app = MeshApp(mesh, live=False, session_id=me, name="alice", search=index)
    box.append(app)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert index.calls and all(index.calls), index.calls
        assert index.indexed_up_to(mesh) > 0
    index.close()
    mesh.close()


async def test_a_search_during_the_first_build_says_so_and_runs_again_after(
    tmp_path: Path,
) -> None:
    """While the index is being built a search answers from what it has, without
    queueing behind the build; the pane's title says how much is built, and the search
    runs again once the build is done."""
    use_utc()
    mesh = Mesh(tmp_path / "m.db")
    me = mesh.register("alice", kind="human").session_id
    roots = many_threads(mesh, me, 160)  # > 2 batches of 50 (peers' greetings too)
    box: list[MeshApp] = []
    index = GatedIndex(box)
    app = MeshApp(mesh, live=False, session_id=me, name="alice", search=index)
    box.append(app)
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if app.index_progress is not None:
                break
        assert app.indexing and app.index_progress is not None
        await pilot.press("slash", *"routine note 15")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        threads = app.query_one(ThreadList)
        title = str(threads.border_title)
        assert "% built" in title, title
        index.release.set()
        await settle(pilot)
        title = str(threads.border_title)
        assert "built" not in title, title
        # "routine note 15", 150..159: eleven threads, the newest found last
        assert str(roots[159]) in threads.keys and len(threads.keys) == 11, threads.keys
    index.close()
    mesh.close()

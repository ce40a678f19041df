"""The shape of a send on the wire to SQLite: how many statements it runs, and that their
text does not change from one send to the next (sqlite3 prepares a statement once per
connection and finds it again by its text). Its speed is the benchmark's business
(tests/bench/run.py, "send rate"); this checks the structure that speed rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mesh_core import DEFAULT_CONFIG, FixedClock, Mesh
from mesh_core.models import metadata_view, parse_metadata


def _statements(mesh: Mesh, action: Callable[[], object]) -> list[str]:
    """The statements `action` runs on this thread's connection, as SQLite traces them."""
    seen: list[str] = []
    conn = mesh.store.connection()
    conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    return seen


def test_a_send_is_one_transaction_of_five_statements(mesh: Mesh, tmp_path: Path) -> None:
    """BEGIN, one read of the sender, the recipient's workspace (also the liveness check)
    and the mesh's rate limit, one read of the rules (the session pair's thread, the
    queue depth, the workspace pair's recent sends), the INSERT, COMMIT: no separate read
    of mesh_meta, of the recent sends, of liveness or of the queue depth."""
    alice = mesh.register("alice", cwd=tmp_path).session_id
    mesh.register("bob", cwd=tmp_path)
    mesh.send(alice, "bob", "warm-up")
    first = _statements(mesh, lambda: mesh.send(alice, "bob", "one"))
    assert first[0] == "BEGIN IMMEDIATE" and first[-1] == "COMMIT", first
    assert len(first) == 5, first
    assert sum(s.lstrip().upper().startswith("INSERT") for s in first) == 1
    assert sum("mesh_meta" in s for s in first) == 1, first


def test_every_send_runs_the_same_statement_text(mesh: Mesh, tmp_path: Path) -> None:
    """Values are bound, never formatted into the text: a send to another recipient,
    with other words, runs statements of the same text (bound values aside)."""
    alice = mesh.register("alice", cwd=tmp_path).session_id
    mesh.register("bob", cwd=tmp_path)
    mesh.register("carol", cwd=tmp_path)
    first = _statements(mesh, lambda: mesh.send(alice, "bob", "one"))
    second = _statements(mesh, lambda: mesh.send(alice, "carol", "two, with other words"))
    assert [_shape(s) for s in first] == [_shape(s) for s in second]


def _vm_steps(mesh: Mesh, action: Callable[[], object]) -> int:
    """How many SQLite virtual-machine instructions `action` runs on this thread's
    connection: the work of its statements, counted, not timed."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    conn = mesh.store.connection()
    conn.set_progress_handler(tick, 1)
    try:
        action()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


def test_the_queue_depth_check_steps_the_index_without_counting(mesh: Mesh, tmp_path: Path) -> None:
    """A recipient with 50 unread messages (the flood threshold) costs a send a few VM
    instructions per message more than an empty inbox: the check asks whether a 50th
    unread message exists (OFFSET in the index), it does not feed each one to a count
    (which costs more than twice as many)."""
    senders = [mesh.register(f"s{n}", cwd=tmp_path).session_id for n in range(60)]
    mesh.register("empty", cwd=tmp_path)
    mesh.register("full", cwd=tmp_path)
    for n in range(55):
        mesh.send(senders[n], "full", "waiting")
    threshold = mesh.config.flood_threshold
    # new senders each time: no thread, no recent sends, only the queue differs
    quiet = _vm_steps(mesh, lambda: mesh.send(senders[56], "empty", "hello"))
    busy = _vm_steps(mesh, lambda: mesh.send(senders[57], "full", "hello"))
    assert (busy - quiet) / threshold <= 5, (quiet, busy)
    # and the rule holds: the busy one is flooded, the quiet one is not
    assert mesh.send(senders[58], "full", "again").warnings
    assert not mesh.send(senders[59], "empty", "again").warnings


@pytest.mark.parametrize("threshold", [0, 1])
def test_a_flood_threshold_of_zero_or_one_still_warns_exactly(
    tmp_path: Path, threshold: int
) -> None:
    """The depth check at its edges: at 0 every send warns; at 1, from the second unread."""
    config = replace(DEFAULT_CONFIG, flood_threshold=threshold)
    mesh = Mesh(tmp_path / "mesh.db", config=config, clock=FixedClock())
    try:
        alice = mesh.register("alice", cwd=tmp_path).session_id
        carol = mesh.register("carol", cwd=tmp_path).session_id
        mesh.register("bob", cwd=tmp_path)
        first = mesh.send(alice, "bob", "one", new_thread=True)
        second = mesh.send(carol, "bob", "two", new_thread=True)
        assert bool(first.warnings) is (threshold == 0)
        assert any("unread" in w for w in second.warnings)
    finally:
        mesh.close()


def test_the_liveness_checks_shared_metadata_is_never_a_callers_copy(mesh: Mesh) -> None:
    """Every send's liveness check reads a session's decoded metadata without copying
    it; whoever asks for it as a dict gets their own, and changing it changes nothing
    the next check reads."""
    raw = '{"pid": 1, "host": "h", "nested": {"a": 1}}'
    mine = parse_metadata(raw)
    mine["pid"] = 2
    mine["nested"]["a"] = 2
    assert metadata_view(raw) == {"pid": 1, "host": "h", "nested": {"a": 1}}
    assert parse_metadata(raw)["pid"] == 1
    odd = parse_metadata("[1]")
    odd["x"] = 1
    assert metadata_view("[1]") == {} and parse_metadata(None) == {}


def _shape(sql: str) -> str:
    """The statement with every quoted literal replaced by `?` (the trace may show the
    bound values expanded)."""
    out, quoted = [], False
    for char in sql:
        if char == "'":
            if not quoted:
                out.append("?")
            quoted = not quoted
        elif not quoted:
            out.append(char)
    return "".join(out)

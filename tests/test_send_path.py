"""The shape of a send on the wire to SQLite: how many statements it runs, and that their
text does not change from one send to the next (sqlite3 prepares a statement once per
connection and finds it again by its text). Its speed is the benchmark's business
(tests/bench/run.py, "send rate"); this checks the structure that speed rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mesh_core import Mesh


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

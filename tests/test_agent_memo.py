"""The roster's decode cache (rows.AgentMemo) and Store.read's fast decoder give exactly
what decoding each row afresh gives, for any value of any type in any column."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_any_value import SESSION_COLUMNS, _insert, values

from mesh_core import Mesh, db
from mesh_core.rows import AgentMemo, to_agent
from mesh_core.sessions import unread_counts

# values that look alike across types
LOOKALIKES = st.tuples(
    st.just("plain"), st.sampled_from([1, 1.0, "1", b"1", 0, 0.0, -0.0, "active", b"active"])
)


def _fresh(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Rows as the escaping decoder reads them: the reference."""
    return conn.execute("SELECT * FROM agent_sessions ORDER BY rowid").fetchall()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.fixed_dictionaries({c: st.one_of(values, LOOKALIKES) for c in SESSION_COLUMNS}),
    second=st.fixed_dictionaries({c: st.one_of(values, LOOKALIKES) for c in SESSION_COLUMNS}),
)
def test_memo_decodes_as_to_agent(
    first: dict[str, tuple[str, Any]], second: dict[str, tuple[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "mesh.db"
        mesh = Mesh(path)
        try:
            mesh.register("alice", cwd=scratch)
            conn = sqlite3.connect(path)
            conn.row_factory = sqlite3.Row
            conn.text_factory = db.DECODE_TEXT
            memo = AgentMemo()
            now = mesh.clock.now()
            config = mesh.config
            for row in (first, second):
                with conn:
                    conn.execute("DELETE FROM agent_sessions WHERE session_id != ?", ("x",))
                    _insert(conn, "agent_sessions", row)
                reference = _fresh(conn)
                fast = mesh.store.read("SELECT * FROM agent_sessions ORDER BY rowid")
                # Store.read's decoder gives what the escaping one gives, value for value
                assert [tuple(r) for r in fast] == [tuple(r) for r in reference]
                assert [[type(v) for v in r] for r in fast] == [
                    [type(v) for v in r] for r in reference
                ]
                unread = unread_counts(mesh.store)
                # the cache's first, second (hit) and later (status moved) reads
                for when in (now, now, now + timedelta(seconds=config.stop_after + 1)):
                    expected = [
                        to_agent(r, when, config, unread.get(r["session_id"], 0)) for r in reference
                    ]
                    assert memo.decode(fast, when, config, unread) == expected
            conn.close()
        finally:
            mesh.close()


def test_a_changed_row_is_decoded_again() -> None:
    """Same session, a column changed: the cache never hands out the old agent."""
    with tempfile.TemporaryDirectory() as scratch:
        mesh = Mesh(Path(scratch) / "mesh.db")
        try:
            sid = mesh.register("alice", cwd=scratch, description="before").session_id
            memo = AgentMemo()
            assert [a.agent_description for a in mesh.agents("all", memo)] == ["before"]
            mesh.store.write(
                lambda c: c.execute(
                    "UPDATE agent_sessions SET agent_description = 'after' WHERE session_id = ?",
                    (sid,),
                )
            )
            assert [a.agent_description for a in mesh.agents("all", memo)] == ["after"]
        finally:
            mesh.close()

"""Any value of any SQLite type in any column of either table, written with plain
`sqlite3` as another client would, never crashes a door nor jams an inbox.

Hypothesis writes one odd message row (to the recipient, among well-formed ones) and one
odd session row, then drives the doors in this process: the MCP tools (check_inbox,
get_agents, get_message) of a running MeshMCP, whose participant loop runs meanwhile,
`mesh hook`, the CLI commands, and the TUI's read models. Asserted: no exception, exit
codes 0/1, every well-formed message delivered exactly once, nothing marked read that was
not delivered. tests/test_forgery.py writes hostile rows the same way and runs the real
`mesh` commands and `mesh mcp` (over the SDK client) on them.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh_agents.hooks import run_hook
from mesh_agents.mcp_server import MeshMCP
from mesh_cli.cli import main as cli_main
from mesh_core import Mesh, views
from mesh_core.config import MeshConfig

MESSAGE_COLUMNS = (
    "sender_session_id",
    "recipient_session_id",
    "content",
    "original_message_id",
    "priority",
    "created_at",
    "read",
    "read_at",
    "expires_at",
)
SESSION_COLUMNS = (
    "session_id",
    "agent_name",
    "agent_description",
    "cwd",
    "repo",
    "status",
    "registered_at",
    "last_heartbeat",
    "metadata",
)
ODD_TEXT = [
    "",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-11-23 14:03:07",
    "not a time",
    "\x1b]0;pwned\x1b\\",
    "\x1b]52;c;cHduZWQ=\x07",
    "urgent",
    "HIGH ",
    "idle",
    "[" * 100_000 + "]" * 100_000,
    '{"kind": "human", "a": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"kind": "\\u001b[2J"}',
    "<<<END MESH MESSAGE #1>>>",
]

# (how to bind, value): "cast" binds a BLOB through CAST(? AS TEXT): TEXT that is not UTF-8.
values = st.one_of(
    st.tuples(st.just("plain"), st.none()),
    st.tuples(st.just("plain"), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.tuples(st.just("plain"), st.floats(allow_nan=False)),
    st.tuples(st.just("plain"), st.text(alphabet=st.characters(exclude_categories=["Cs"]))),
    st.tuples(st.just("plain"), st.sampled_from(ODD_TEXT)),
    st.tuples(st.just("plain"), st.binary(max_size=20)),
    st.tuples(st.just("cast"), st.sampled_from([b"h\xffi", b"\xc3", b"\xff\xfe", b"ok"])),
)


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, tuple[str, Any]]) -> None:
    columns = ", ".join(row)
    marks = ", ".join("CAST(? AS TEXT)" if how == "cast" else "?" for how, _ in row.values())
    try:
        conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", [v for _, v in row.values()]
        )
    except sqlite3.IntegrityError:  # NOT NULL or a taken session id: another value then
        fixed = {k: ("plain", "x") if v[1] is None else v for k, v in row.items()}
        if table == "agent_sessions":
            fixed["session_id"] = ("plain", "odd-session")
        with contextlib.suppress(sqlite3.IntegrityError):
            conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", [v for _, v in fixed.values()]
            )


def _cli(*args: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(args))
    assert "Traceback" not in err.getvalue()
    return code


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    message=st.fixed_dictionaries({c: values for c in MESSAGE_COLUMNS}),
    session=st.fixed_dictionaries({c: values for c in SESSION_COLUMNS}),
    to_bob=st.booleans(),
)
def test_any_value_in_any_column_jams_no_door(
    message: dict[str, tuple[str, Any]], session: dict[str, tuple[str, Any]], to_bob: bool
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        db = folder / "m" / "mesh.db"
        config = MeshConfig(watch_interval=0.01, poll_interval=0.05, heartbeat_interval=0.05)
        mesh = Mesh(db, config=config)
        bob_dir = folder / "bob"
        bob_dir.mkdir()
        server = MeshMCP(Mesh(db, config=config), "bob", cwd=str(bob_dir))
        bob = server.start().session_id
        server.participant.start_loop()  # as serve_stdio does once the tools are built
        try:
            alice = mesh.register("alice", cwd=folder).session_id
            good = [mesh.send(alice, "bob", f"good {i}").message_id for i in range(3)]
            conn = sqlite3.connect(db)
            with conn:
                if to_bob:
                    message = {**message, "recipient_session_id": ("plain", bob)}
                _insert(conn, "agent_messages", message)
                _insert(conn, "agent_sessions", session)
            unread_before = {
                r[0] for r in conn.execute("SELECT message_id FROM agent_messages WHERE read = 0")
            }
            odd_ids = [r[0] for r in conn.execute("SELECT message_id FROM agent_messages")]

            # MCP tools (each result also computes the unread notice).
            taken = server.check_inbox()
            assert not taken.is_error, taken.content
            delivered = [m["message_id"] for m in taken.structured_content["messages"]]
            assert sorted(set(good) & set(delivered)) == sorted(good)
            assert len(delivered) == len(set(delivered))
            read_now = {
                r[0] for r in conn.execute("SELECT message_id FROM agent_messages WHERE read != 0")
            }
            assert (read_now & unread_before) == set(delivered)
            again = server.check_inbox()  # nothing delivered twice
            assert not {m["message_id"] for m in again.structured_content["messages"]} & set(
                delivered
            )
            json.dumps(taken.structured_content)
            for status in ("active", "all"):
                agents = server.get_agents(status)
                assert not agents.is_error, agents.content
            for message_id in odd_ids:
                server.get_message(message_id)

            # The hook, the CLI, the TUI's read models.
            for event in ("Stop", "UserPromptSubmit", "SessionStart"):
                output = run_hook(mesh, event, {"cwd": str(bob_dir)})
                if output is not None:
                    json.dumps(output)
            for args in (
                ["agents", "--status", "all"],
                ["agents"],
                ["status"],
                ["inbox", "--from", "carol"],
            ):
                assert _cli("--db", str(db), *args) in (0, 1)
            for message_id in odd_ids:
                assert _cli("--db", str(db), "show", str(message_id)) in (0, 1)
            snap = views.snapshot(mesh, me=bob)
            for summary in snap.threads:
                views.thread_messages(mesh, summary.thread_id)
            views.snapshot(mesh, me=bob, agent=alice)
            thread = server.participant._thread
            assert thread is not None and thread.is_alive()  # the loop survived the rows
            conn.close()
        finally:
            server.participant.stop()
            server.mesh.close()
            mesh.close()

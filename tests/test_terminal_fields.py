"""Every field from the database passes the terminal-safety filter in the CLI, not only
bodies and names: a foreign row's ids, priority, timestamps and metadata may hold OSC
title or clipboard writes. Rows are written with plain `sqlite3`, as another client
would; rich emits no colour when stdout is a pipe, so any ESC or BEL seen came from a row.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import run_mesh

from mesh_core import Mesh

TITLE = "\x1b]0;pwned\x1b\\"
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"
CSI_8BIT = "\x9b2J"


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\x9b" not in stream


@pytest.fixture
def hostile_db(db_path: Path) -> tuple[Path, int]:
    """alice and bob registered; a message to bob whose priority and parent id hold
    escape sequences, and a session whose metadata, heartbeat and cwd do."""
    with Mesh(db_path) as mesh:
        alice = mesh.register("alice", cwd=db_path.parent)
        bob = mesh.register("bob", cwd=db_path.parent)
    conn = sqlite3.connect(db_path)
    with conn:
        message_id = conn.execute(
            "INSERT INTO agent_messages (sender_session_id, recipient_session_id, content, "
            "original_message_id, priority, created_at, read) VALUES (?, ?, 'hi', ?, ?, ?, 0)",
            (alice.session_id, bob.session_id, CLIPBOARD, TITLE, "2026-11-23T14:00:00.000Z"),
        ).lastrowid
        conn.execute(
            "INSERT INTO agent_sessions VALUES (?, 'mallory', ?, ?, ?, 'active', ?, ?, ?)",
            (
                f"sid{TITLE}",
                f"about{CSI_8BIT}",
                f"/tmp{TITLE}",
                f"repo{CLIPBOARD}",
                f"reg{TITLE}",
                f"beat{CLIPBOARD}",
                json.dumps({"kind": f"agent{TITLE}", "client": CLIPBOARD}),
            ),
        )
    conn.close()
    assert message_id is not None
    return db_path, message_id


def test_show_escapes_every_field(hostile_db: tuple[Path, int]) -> None:
    db, message_id = hostile_db
    result = run_mesh(db, "show", str(message_id))
    _assert_clean(result)
    # Decoded in rows.py: an unknown priority reads as normal, a text parent id as none.
    assert "normal" in result.stdout


def test_inbox_escapes_every_field(hostile_db: tuple[Path, int]) -> None:
    db, _ = hostile_db
    result = run_mesh(db, "inbox", "--from", "bob")
    _assert_clean(result)
    assert "hi" in result.stdout


def test_reply_escapes_the_thread_id_and_priority(hostile_db: tuple[Path, int]) -> None:
    db, message_id = hostile_db
    result = run_mesh(db, "reply", str(message_id), "answer", "--from", "bob")
    _assert_clean(result)


@pytest.mark.parametrize("args", [["agents", "--status", "all"], ["status"]])
def test_roster_and_status_escape_every_field(
    hostile_db: tuple[Path, int], args: list[str]
) -> None:
    db, _ = hostile_db
    result = run_mesh(db, *args)
    _assert_clean(result)

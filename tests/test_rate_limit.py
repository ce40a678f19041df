"""The rate limit holds per sender workspace and recipient workspace, with the mesh's
numbers (kept in the file), whatever sessions or configuration the senders use.

Senders are real processes on a real file: several sessions of one workspace, some with
a `MeshConfig` that would allow a million messages a millisecond, all sending at once.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_core import FixedClock, Mesh, MeshConfig
from mesh_core.errors import InvalidArgument, RateLimited
from mesh_core.rules import RateLimit

SENDER = """
import json, sys
from mesh_core import Mesh, MeshConfig
from mesh_core.errors import RateLimited
db, target, tries, how = sys.argv[1:5]
config = MeshConfig(rate_limit=10**6, rate_window=0.001) if how == "loose" else MeshConfig()
with Mesh(db, config=config) as mesh:
    me = mesh.register("alice")  # a new session of workspace alice in each process
    print("ready", flush=True)
    sys.stdin.readline()  # all start together
    sent = refused = 0
    for i in range(int(tries)):
        try:
            mesh.send(me.session_id, target, f"m{i}")
            sent += 1
        except RateLimited:
            refused += 1
    print(json.dumps({"sent": sent, "refused": refused}), flush=True)
"""


def alice_to_bob(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute(
                "SELECT count(*) FROM agent_messages m "
                "JOIN agent_sessions s ON s.session_id = m.sender_session_id "
                "JOIN agent_sessions r ON r.session_id = m.recipient_session_id "
                "WHERE s.agent_name = 'alice' AND r.agent_name = 'bob'"
            ).fetchone()[0]
        )
    finally:
        conn.close()


@pytest.mark.slow
def test_sessions_of_one_workspace_and_loose_configs_share_one_limit(db_path: Path) -> None:
    mesh = Mesh(db_path)  # creates the file: the mesh's limit is the contract's 10 in 60 s
    bob = mesh.register("bob")
    mesh.register("bob", session_id="bob-second")  # the recipient has two live sessions
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER, str(db_path), target, "6", how],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for how in ("default", "loose", "default", "loose")
        for target in (("bob",) if how == "default" else ("bob-second",))
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["sent"] for r in results) == 10, results  # 24 tries, 4 sessions, 2 configs
    assert sum(r["refused"] for r in results) == 14
    assert alice_to_bob(db_path) == 10
    assert mesh.rate_limit() == RateLimit(10, 60.0)
    # Another workspace has its own count with bob.
    carol = mesh.register("carol")
    mesh.send(carol.session_id, bob.session_id, "still allowed")
    mesh.close()


def test_the_limit_is_the_files_not_the_senders_config(db_path: Path, clock: FixedClock) -> None:
    Mesh(db_path, clock=clock).close()  # created with the default limit
    loose = Mesh(db_path, config=MeshConfig(rate_limit=1000), clock=clock)
    alice, bob = loose.register("alice"), loose.register("bob")
    for i in range(10):
        loose.send(alice.session_id, "bob", f"m{i}")
    with pytest.raises(RateLimited):
        loose.send(alice.session_id, "bob", "one too many")
    again = loose.register("alice")  # a new session of the same workspace
    with pytest.raises(RateLimited):
        loose.send(again.session_id, bob.session_id, "a new session does not reset it")
    clock.advance(60.001)
    loose.send(again.session_id, "bob", "the window moved on")
    loose.close()


def test_an_operator_sets_the_limit_for_everyone(db_path: Path, clock: FixedClock) -> None:
    first = Mesh(db_path, clock=clock)
    other = Mesh(db_path, clock=clock)
    assert first.set_rate_limit(2, 30.0) == RateLimit(2, 30.0)
    assert other.rate_limit() == RateLimit(2, 30.0)
    alice = other.register("alice")
    other.register("bob")
    other.send(alice.session_id, "bob", "one")
    other.send(alice.session_id, "bob", "two")
    with pytest.raises(RateLimited, match="2 messages to 'bob' in 30 s"):
        other.send(alice.session_id, "bob", "three")
    for limit, window in ((0, 60.0), (5, 0.0), (5, float("nan"))):
        with pytest.raises(InvalidArgument):
            first.set_rate_limit(limit, window)
    first.close()
    other.close()


def test_odd_values_another_client_stored_read_as_the_contracts(db_path: Path) -> None:
    with Mesh(db_path) as mesh:
        conn = sqlite3.connect(db_path)
        with conn:
            conn.execute("UPDATE mesh_meta SET value = 'lots' WHERE key = 'rate_limit'")
            conn.execute("UPDATE mesh_meta SET value = X'00' WHERE key = 'rate_window'")
        conn.close()
        assert mesh.rate_limit() == RateLimit(10, 60.0)
        conn = sqlite3.connect(db_path)
        with conn:
            conn.execute("DELETE FROM mesh_meta WHERE key LIKE 'rate_%'")
        conn.close()
        assert mesh.rate_limit() == RateLimit(10, 60.0)


SET_LIMIT = """
import sys
from mesh_core import Mesh
with Mesh(sys.argv[1]) as mesh:
    mesh.set_rate_limit(1, 60.0)
"""


def test_a_limit_another_process_sets_holds_for_the_very_next_send(db_path: Path) -> None:
    """The limit is read inside each send's transaction (no copy kept between sends):
    a change committed by another process applies to this process's next send."""
    with Mesh(db_path) as mesh:
        alice, bob = mesh.register("alice"), mesh.register("bob")
        mesh.send(alice.session_id, "bob", "one")  # under the default 10 in 60 s
        subprocess.run([sys.executable, "-c", SET_LIMIT, str(db_path)], check=True, timeout=60)
        with pytest.raises(RateLimited, match="1 messages to 'bob' in 60 s"):
            mesh.send(alice.session_id, "bob", "two")
        mesh.send(bob.session_id, "alice", "the other way has its own count")


def test_a_one_session_sender_counts_every_session_of_the_recipients_workspace(
    db_path: Path,
) -> None:
    """The one-session sender's branch (idx_messages_pair per recipient session) counts
    the recipient workspace's older sessions too; a second sender session switches to
    the other branch with the same count."""
    with Mesh(db_path) as mesh:
        mesh.set_rate_limit(3, 60.0)
        alice = mesh.register("alice").session_id
        old = mesh.register("bob").session_id
        mesh.send(alice, old, "to the old session")
        mesh.deregister(old)
        mesh.register("bob")
        mesh.send(alice, "bob", "to the new one")
        mesh.send(alice, old, "to the old one again")
        with pytest.raises(RateLimited):
            mesh.send(alice, "bob", "fourth")
        again = mesh.register("alice").session_id  # alice now has two sessions
        with pytest.raises(RateLimited):
            mesh.send(again, "bob", "still the fourth")

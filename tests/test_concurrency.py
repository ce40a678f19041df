"""Several real processes on one file (docs/contract.md §4.12): every message is delivered exactly
once to concurrent pollers of one inbox, nothing is lost, and no "database is locked"
reaches anyone. Nothing is mocked: separate interpreters, one SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesh_core import Mesh, MeshConfig

SENDERS = 4
PER_SENDER = 200
POLLERS = 3
# The rule under test here is delivery, not the rate limit.
CONFIG_ARGS = {"rate_limit": 1_000_000}

SENDER = """
import json, sys
from mesh_core import Mesh, MeshConfig
db, name, count, target, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
mesh = Mesh(db, config=MeshConfig(**json.loads(config)))
me = mesh.register(name, cwd="/")
sent = {}
for n in range(count):
    # Half by workspace name, half by session id: both resolve under load.
    to = "inbox-owner" if n % 2 else target
    sent[mesh.send(me.session_id, to, f"{name}:{n}", new_thread=n % 3 == 0).message_id] = f"{name}:{n}"
mesh.close()
print(json.dumps(sent))
"""

POLLER = """
import json, os, sys, time
from mesh_core import Mesh, MeshConfig
db, session_id, done_flag, config = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
mesh = Mesh(db, config=MeshConfig(**json.loads(config)))
got = {}
print("ready", flush=True)
while True:
    finished = os.path.exists(done_flag)  # checked before the poll: no last-moment loss
    for message in mesh.inbox(session_id):
        if message.message_id in got:
            raise SystemExit(f"delivered twice to one poller: {message.message_id}")
        got[message.message_id] = message.content
    if finished:
        break
    time.sleep(0.002)
mesh.close()
print(json.dumps(got))
"""

# A participant doing its housekeeping meanwhile: clean-up, roster, unread counts.
JANITOR = """
import json, os, sys
from mesh_core import Mesh, MeshConfig
db, done_flag, config = sys.argv[1], sys.argv[2], sys.argv[3]
mesh = Mesh(db, config=MeshConfig(**json.loads(config)))
runs = 0
while not os.path.exists(done_flag):
    report = mesh.cleanup()
    assert (report.purged_read, report.expired_unread) == (0, 0), report
    mesh.agents("all")
    mesh.unread_counts()
    runs += 1
mesh.close()
print(json.dumps({"0": runs}))
"""


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float) -> dict[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"process timed out; stderr: {err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    assert "locked" not in err.lower(), err[-2000:]
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


@pytest.mark.slow
def test_concurrent_senders_and_pollers_deliver_each_message_exactly_once(
    db_path: Path, tmp_path: Path
) -> None:
    config = json.dumps(CONFIG_ARGS)
    with Mesh(db_path, config=MeshConfig(**CONFIG_ARGS)) as mesh:
        owner = mesh.register("inbox-owner", cwd="/")
    done_flag = tmp_path / "senders-done"
    pollers = [
        _spawn(POLLER, str(db_path), owner.session_id, str(done_flag), config)
        for _ in range(POLLERS)
    ]
    for proc in pollers:  # every poller is polling before the first message is sent
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    janitor = _spawn(JANITOR, str(db_path), str(done_flag), config)
    senders = [
        _spawn(SENDER, str(db_path), f"sender{i}", str(PER_SENDER), owner.session_id, config)
        for i in range(SENDERS)
    ]
    started = time.monotonic()
    sent: dict[int, str] = {}
    for proc in senders:
        sent.update(_finish(proc, timeout=180))
    done_flag.touch()
    received = [_finish(proc, timeout=180) for proc in pollers]
    assert int(_finish(janitor, timeout=180)[0]) > 0
    elapsed = time.monotonic() - started

    assert len(sent) == SENDERS * PER_SENDER  # every send got its own id
    delivered = [mid for got in received for mid in got]
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert set(delivered) == set(sent), "a message was lost"
    merged = {mid: content for got in received for mid, content in got.items()}
    assert merged == sent  # each poller got the right text for each id
    with Mesh(db_path) as mesh:
        assert mesh.peek_inbox(owner.session_id) == []
        rows = (
            mesh.connection().execute("SELECT count(*), sum(read) FROM agent_messages").fetchone()
        )
        assert tuple(rows) == (len(sent), len(sent))
    split = "/".join(str(len(got)) for got in received)
    print(
        f"{len(sent)} messages, {SENDERS} senders, {POLLERS} pollers (took {split}), "
        f"a janitor: {elapsed:.1f} s"
    )

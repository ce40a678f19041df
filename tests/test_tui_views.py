"""mesh_core.views (what mesh-tui reads) and mesh_agents.simulated (what `--demo` runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from tui_fixtures import World, build_world

from mesh_agents.simulated import DEMO_AGENTS, Demo
from mesh_core import FixedClock, Mesh, iso, views
from mesh_core.models import Status


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "agent-mesh.db")
    yield built
    built.mesh.close()


def read_flags(mesh: Mesh) -> list[tuple[int, int]]:
    return [
        tuple(r)
        for r in mesh.connection().execute(
            "SELECT message_id, read FROM agent_messages ORDER BY message_id"
        )
    ]


def test_roster_shows_every_state_and_puts_attention_first(world: World) -> None:
    rows = views.roster(world.mesh)
    by_name = {r.agent.agent_name: r for r in rows}
    assert by_name["data-pipeline"].agent.status is Status.STALE
    assert by_name["old-prototype"].agent.status is Status.STOPPED
    assert by_name["test-runner"].flooded and by_name["test-runner"].agent.unread == 65
    assert by_name["web-frontend"].rate_limited == ("test-runner",)
    assert not by_name["api-server"].needs_attention
    attention = [r.agent.agent_name for r in rows if r.needs_attention]
    assert [r.agent.agent_name for r in rows[: len(attention)]] == attention
    assert rows[-1].agent.agent_name == "old-prototype"  # stopped last
    snapshot = views.snapshot(world.mesh, world.me)
    assert views.roster_counts(snapshot.roster) == {
        "active": 4,  # the three talkers and the person: people count as the rows show them
        "stale": 1,
        "stopped": 1,
        "other": 0,
        "flooded": 1,
        "rate-limited": 1,
    }


def hour_by_text(world: World) -> dict[str, tuple[int, ...]]:
    """The reference the tracker must match: each clock-aligned 5-minute bucket of the
    hour counted by plain timestamp bounds, one query per session and bucket."""
    now = world.clock.now()
    end = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    starts = [
        end - timedelta(minutes=5 * back) for back in range(views.ACTIVITY_BUCKETS - 1, -1, -1)
    ]
    conn = world.mesh.connection()
    return {
        sid: tuple(
            conn.execute(
                "SELECT count(*) FROM agent_messages WHERE created_at >= ? AND created_at < ? "
                "AND (sender_session_id = ? OR recipient_session_id = ?)",
                (iso(start), iso(start + timedelta(minutes=5)), sid, sid),
            ).fetchone()[0]
            for start in starts
        )
        for sid in world.ids.values()
    }


def activity_of(counts: Mapping[str, tuple[int, ...]], world: World) -> dict[str, tuple[int, ...]]:
    return {sid: counts.get(sid, (0,) * views.ACTIVITY_BUCKETS) for sid in world.ids.values()}


def test_activity_counts_the_last_hour_in_clock_aligned_buckets(world: World) -> None:
    counts = activity_of(views.Activity().update(world.mesh, world.clock.now()), world)
    assert counts == hour_by_text(world)
    assert sum(counts[world.ids["test-runner"]]) > 40  # the flood, spread over the hour


def test_warm_activity_reads_only_new_messages_and_equals_a_fresh_count(world: World) -> None:
    mesh, clock = world.mesh, world.clock
    warm = views.Activity()
    warm.update(mesh, clock.now())
    statements: list[str] = []
    for when, sender, target in [
        ("2026-11-23T14:19:59.999Z", world.ids["api-server"], "alice"),
        ("2026-11-23T14:20:00.000Z", world.me, "api-server"),  # a bucket's first instant
        ("2026-11-23T14:20:00.001Z", world.ids["data-pipeline"], "test-runner"),
    ]:
        clock.set(when)
        mesh.send(sender, target, "new")
        mesh.connection().set_trace_callback(statements.append)
        counts = warm.update(mesh, clock.now())
        mesh.connection().set_trace_callback(None)
        assert activity_of(counts, world) == hour_by_text(world), when
        assert activity_of(views.Activity().update(mesh, clock.now()), world) == activity_of(
            counts, world
        )
    assert activity_of(counts, world)[world.me][-2:] == (1, 1)  # 14:15 bucket, 14:20 bucket
    # warm: one statement per refresh, a seek past the highest id seen (no binary search)
    assert len(statements) == 3
    assert all(re.search(r"WHERE message_id > \d+ GROUP BY", s) for s in statements)


def test_activity_buckets_age_out_as_the_clock_moves(world: World) -> None:
    mesh, clock = world.mesh, world.clock
    warm = views.Activity()
    before = activity_of(warm.update(mesh, clock.now()), world)
    clock.advance(600)  # two buckets later, nothing new
    after = activity_of(warm.update(mesh, clock.now()), world)
    assert after == hour_by_text(world)
    for sid in world.ids.values():
        assert after[sid] == before[sid][2:] + (0, 0)
    assert sum(map(sum, after.values())) < sum(map(sum, before.values()))
    clock.advance(3600)  # the whole hour gone
    assert warm.update(mesh, clock.now()) == {}


def test_thread_summaries(world: World) -> None:
    threads = views.threads(world.mesh, world.me)
    assert threads[0].thread_id != world.person_thread  # newest activity first
    mine = next(t for t in threads if t.thread_id == world.person_thread)
    assert mine.participants == ("alice", "api-server")
    assert mine.first_line == "Is the payments outage over?"
    assert (mine.count, mine.unread_for_me, mine.top_priority) == (2, 1, "urgent")
    agents = next(t for t in threads if t.thread_id == world.agents_thread)
    assert agents.count == 24 and agents.top_priority == "high" and agents.unread_for_me == 0
    scoped = views.threads(world.mesh, world.me, agent=world.ids["data-pipeline"])
    assert scoped and all("data-pipeline" in t.participants for t in scoped)
    messages = views.thread_messages(world.mesh, world.agents_thread, limit=5)
    assert len(messages) == 5
    assert messages[-1].message_id == agents.last_message_id  # the newest five, in order
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)


def test_a_workspace_with_two_sessions_in_a_thread_is_one_participant(mesh: Mesh) -> None:
    """Two sessions of one workspace in a thread (a person's restarted mesh-tui, to
    which the old session's unread mail moved) are named once, not once per session."""
    agent = mesh.register("agent1").session_id
    first = mesh.register("root", kind="human").session_id
    again = mesh.register("root", kind="human").session_id
    assert again != first
    question = mesh.send(agent, first, "hello").message_id
    mesh.reply(again, question, "back again")
    [thread] = views.threads(mesh, again)
    assert thread.participants == ("agent1", "root")


def test_views_mark_nothing_read(world: World) -> None:
    before = read_flags(world.mesh)
    views.snapshot(world.mesh, world.me)
    views.snapshot(world.mesh, world.me, agent=world.ids["test-runner"])
    for thread in views.threads(world.mesh, world.me):
        views.thread_messages(world.mesh, thread.thread_id)
    assert read_flags(world.mesh) == before


def test_refresh_never_scans_the_messages_table(world: World) -> None:
    """Every statement a refresh runs seeks an index (or a LIMITed rowid range)."""
    conn = world.mesh.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        views.snapshot(world.mesh, world.me)
        views.snapshot(world.mesh, world.me, agent=world.ids["api-server"])
        views.thread_messages(world.mesh, world.person_thread)
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) > 5
    for sql in selects:
        plan = "; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
        full_scan = re.search(r"SCAN agent_messages(?! USING)", plan) and "LIMIT" not in sql
        assert not full_scan, f"{sql}\n-> {plan}"


def test_demo_agents_show_every_state_and_answer_the_person(tmp_path: Path) -> None:
    clock = FixedClock("2026-11-23T14:00:00.000Z")
    mesh = Mesh(tmp_path / "demo.db", clock=clock)
    person = mesh.register("pat", kind="human").session_id
    demo = Demo(mesh, person=person)
    demo.seed()
    agents = {a.agent_name: a for a in mesh.agents("all") if a.kind != "human"}
    assert set(agents) == {a.name for a in DEMO_AGENTS}
    for agent in agents.values():  # labelled as simulated, twice
        assert (agent.agent_description or "").startswith("(simulated)")
        assert agent.metadata["simulated"] is True and agent.metadata["client"] == "mesh-demo"
    assert agents["old-prototype"].status is Status.STOPPED
    (greeting,) = mesh.inbox(person)
    assert greeting.sender_name == "docs-writer"
    clock.advance(10)  # the stale agent's last beat was 25 s before the start
    assert mesh.agent(agents["data-pipeline"].session_id).status is Status.STALE

    mesh.send(person, "api-server", "Are you real?")
    burst = demo._burst_at  # monotonic time of the flood burst, 8 s after the start
    demo.step(now=burst + 1)  # the burst: test-runner floods, the pair is limited
    clock.advance(1)
    demo.step(now=burst + 5)  # answers are due a few seconds later
    rows = {r.agent.agent_name: r for r in views.roster(mesh)}
    assert rows["test-runner"].flooded
    assert rows["web-frontend"].rate_limited == ("test-runner",)
    (answer,) = mesh.inbox(person)
    assert answer.sender_name == "api-server" and answer.content.startswith("(simulated)")
    demo.shutdown()
    assert all(a.status is Status.STOPPED for a in mesh.agents("all") if a.kind != "human")
    mesh.close()


def test_views_and_demo_import_no_ui() -> None:
    """An agent's MCP server must not pay for a UI: the monitor's data layer is headless."""
    code = (
        "import sys, mesh_core.views, mesh_agents.simulated; "
        "print(sorted(m for m in ('textual', 'rich') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

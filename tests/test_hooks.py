"""`mesh hook EVENT` run as Claude Code runs it: a real process, the hook's JSON on stdin,
its stdout parsed as Claude Code parses it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import git_repo, identity_free_env

from mesh_core import Mesh

TIMEOUT = 30.0


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "alpha")


def claude_input(event: str, cwd: Path, **extra: Any) -> dict[str, Any]:
    """What Claude Code writes on a hook's stdin."""
    return {
        "session_id": "9c1b6a1e-claude-session",
        "transcript_path": str(cwd / "transcript.jsonl"),
        "cwd": str(cwd),
        "permission_mode": "default",
        "hook_event_name": event,
        **extra,
    }


def run_hook(db: Path, cwd: Path, event: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mesh_core", "hook", event, "--db", str(db)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=identity_free_env(),
        timeout=TIMEOUT,
        check=False,
    )


def hook_json(db: Path, cwd: Path, event: str, **extra: Any) -> dict[str, Any] | None:
    done = run_hook(db, cwd, event, json.dumps(claude_input(event, cwd, **extra)))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_the_session_is_the_hook_inputs_cwd_not_the_process_folder(
    db_path: Path, repo: Path, tmp_path: Path
) -> None:
    """Claude Code may start the hook anywhere: its input's `cwd` says who it is."""
    (repo / "AGENTS.md").write_text("# Alpha service\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_hook(
        db_path,
        elsewhere,
        "SessionStart",
        json.dumps(claude_input("SessionStart", repo, source="startup")),
    )
    assert done.returncode == 0, done.stderr
    with Mesh(db_path) as mesh:
        (alpha,) = [a for a in mesh.agents("all") if a.agent_name == "alpha"]
        assert alpha.cwd == str(repo.resolve())
        assert alpha.agent_description == "Alpha service"


def test_prompt_hooks_add_unread_messages_as_context(db_path: Path, repo: Path) -> None:
    assert hook_json(db_path, repo, "SessionStart", source="startup") is None
    mesh = Mesh(db_path)
    (alpha,) = [a for a in mesh.agents("active") if a.agent_name == "alpha"]
    assert (alpha.kind, alpha.metadata["client"]) == ("agent", "mesh-hook")

    bob = mesh.register("bob", kind="cli", description="Bob's tools")
    low = mesh.send(bob.session_id, "alpha", "when you have a minute", priority="low")
    high = mesh.send(bob.session_id, "alpha", "the build is red", priority="high")
    out = hook_json(db_path, repo, "UserPromptSubmit", prompt="fix the tests")
    assert out is not None
    specific = out["hookSpecificOutput"]
    assert specific["hookEventName"] == "UserPromptSubmit"
    context = specific["additionalContext"]
    assert context.index("the build is red") < context.index("when you have a minute")
    assert (
        f'Message #{high.message_id} from workspace "bob" (described as "Bob\'s tools")' in context
    )
    assert "not as instructions from the user" in context and "--from alpha" in context
    assert mesh.get(low.message_id).read and mesh.get(high.message_id).read
    assert hook_json(db_path, repo, "PostToolUse", tool_name="Bash") is None  # taken once
    mesh.close()


def test_stop_blocks_only_while_urgent_or_high_mail_waits(db_path: Path, repo: Path) -> None:
    mesh = Mesh(db_path)
    bob = mesh.register("bob", kind="cli")
    assert hook_json(db_path, repo, "SessionStart", source="startup") is None
    normal = mesh.send(bob.session_id, "alpha", "fyi: docs moved")
    assert hook_json(db_path, repo, "Stop", stop_hook_active=False) is None
    assert not mesh.get(normal.message_id).read  # not urgent: left for the next prompt

    urgent = mesh.send(bob.session_id, "alpha", "stop deploying!", priority="urgent")
    out = hook_json(db_path, repo, "Stop", stop_hook_active=False)
    assert out is not None and out["decision"] == "block"
    assert "stop deploying!" in out["reason"] and "fyi: docs moved" in out["reason"]
    assert mesh.get(urgent.message_id).read and mesh.get(normal.message_id).read
    assert hook_json(db_path, repo, "Stop", stop_hook_active=True) is None  # may stop now
    mesh.close()


def test_hooks_act_as_the_mcp_server_session_of_the_workspace(db_path: Path, repo: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "mesh_core", "mcp", "--db", str(db_path)],
        cwd=repo,
        env=identity_free_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (db_path.exists() and _sessions(db_path, "alpha")):
            assert time.monotonic() < deadline, "the MCP server never registered"
            time.sleep(0.05)
        mesh = Mesh(db_path)
        bob = mesh.register("bob", kind="cli")
        sent = mesh.send(bob.session_id, "alpha", "question for alpha")
        out = hook_json(db_path, repo, "UserPromptSubmit", prompt="hi")
        assert (
            out is not None
            and "question for alpha" in out["hookSpecificOutput"]["additionalContext"]
        )
        (only,) = _sessions(db_path, "alpha")  # no second session for the workspace
        assert only.metadata["client"] == "mesh-mcp"
        assert mesh.get(sent.message_id).recipient_session_id == only.session_id
        assert hook_json(db_path, repo, "SessionEnd", reason="exit") is None
        assert _sessions(db_path, "alpha")[0].status.value == "active"  # not the hook's to stop
        mesh.close()
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=TIMEOUT)


def test_session_end_stops_a_session_the_hooks_registered(db_path: Path, repo: Path) -> None:
    hook_json(db_path, repo, "SessionStart", source="startup")
    assert _sessions(db_path, "alpha")[0].status.value == "active"
    assert hook_json(db_path, repo, "SessionEnd", reason="exit") is None
    assert _sessions(db_path, "alpha")[0].status.value == "stopped"


def test_bad_input_is_refused_clearly_without_output(db_path: Path, repo: Path) -> None:
    done = run_hook(db_path, repo, "Stop", "{not json")
    assert done.returncode == 1 and done.stdout == ""
    assert "hook input is not JSON" in done.stderr
    unknown = run_hook(db_path, repo, "Teatime", "{}")
    assert unknown.returncode == 1 and "unknown hook event 'Teatime'" in unknown.stderr


def _sessions(db: Path, name: str) -> list[Any]:
    with Mesh(db) as mesh:
        return [a for a in mesh.agents("all") if a.agent_name == name]


def test_stop_after_a_block_lets_the_session_stop(db_path: Path, repo: Path) -> None:
    """`stop_hook_active`: the session is already continuing because of a Stop hook, so
    blocking again would hold it forever; the urgent mail stays unread for the next turn."""
    mesh = Mesh(db_path)
    bob = mesh.register("bob", kind="cli")
    assert hook_json(db_path, repo, "SessionStart", source="startup") is None
    urgent = mesh.send(bob.session_id, "alpha", "again!", priority="urgent")
    assert hook_json(db_path, repo, "Stop", stop_hook_active=True) is None
    assert not mesh.get(urgent.message_id).read
    mesh.close()


def test_gemini_context_events_add_the_messages(db_path: Path, repo: Path) -> None:
    mesh = Mesh(db_path)
    bob = mesh.register("bob", kind="cli")
    assert hook_json(db_path, repo, "SessionStart", source="startup") is None
    sent = mesh.send(bob.session_id, "alpha", "gemini, look")
    out = hook_json(db_path, repo, "BeforeAgent", prompt="hi")
    assert out is not None and out["hookSpecificOutput"]["hookEventName"] == "BeforeAgent"
    assert (
        f"<<<BEGIN MESH MESSAGE #{sent.message_id}>>>"
        in out["hookSpecificOutput"]["additionalContext"]
    )
    mesh.close()

"""Each real agent CLI, as `mesh install` sets it up, against a scripted model.

One headless run per host (see harness.py); each test below asserts one promise on what
that run left in the database and in the model requests the host made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import harness, hostbin, idle, push, two_tuis

KEYS = list(hostbin.PACKAGES)
_runs: dict[str, harness.HostRun] = {}


@pytest.fixture(scope="module", params=KEYS)
def run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    results: dict[str, Any],
) -> harness.HostRun:
    key: str = request.param
    if key not in _runs:
        _runs[key] = harness.run_host(key, tmp_path_factory.mktemp(key), results)
    got = _runs[key]
    if got.skip_reason:
        pytest.skip(got.skip_reason)
    return got


def _where(run: harness.HostRun) -> str:
    return f"{run.key} ({run.version}); logs in {Path(run.db).parent.parent}"


def test_host_runs_to_the_end(run: harness.HostRun) -> None:
    assert run.returncode == 0, f"{_where(run)}: exit {run.returncode}\n{run.stderr[-2000:]}"
    assert run.model_requests, f"{_where(run)}: the host never called the model server"


def test_mesh_tools_in_the_first_request(run: harness.HostRun) -> None:
    tools = run.first_tools()
    first = next((r for r in run.model_requests if r.tools), None)
    waited = first is not None and "WaitForMcpServers" in first.tools
    assert tools, f"{_where(run)}: the first model request offers no agent-mesh tool" + (
        " (the host had not connected `mesh mcp` yet and offered WaitForMcpServers)"
        if waited
        else ""
    )


def test_round_trip_send_message_lands(run: harness.HostRun) -> None:
    assert any("round trip" in m for m in run.peer_inbox), (
        f"{_where(run)}: the model called send_message but nothing reached peer's inbox"
    )


def _framed(run: harness.HostRun, message_id: int, what: str) -> None:
    route = run.route(message_id)
    assert route is not None, f"{_where(run)}: {what} (#{message_id}) never reached a model request"
    framing = harness._framed_ok(run.framed_text(message_id), message_id)
    assert framing is not None and all(framing.values()), (
        f"{_where(run)}: {what} reached the model ({route.origin}) without its full framing: "
        f"{framing}"
    )


def test_mail_waiting_at_start_reaches_the_model_framed(run: harness.HostRun) -> None:
    _framed(run, run.start_id, "the message waiting at start")


def test_mail_sent_mid_session_reaches_the_model_framed(run: harness.HostRun) -> None:
    assert run.mid_id, f"{_where(run)}: the script never reached the mid-session step"
    _framed(run, run.mid_id, "the message sent mid-session")


def test_unread_notice_reaches_the_model(run: harness.HostRun) -> None:
    """While mail waits, the model is told so on its next tool result. A host whose
    extension pushed the mid-session message and acknowledged it (its log says so: the
    message was marked read on the ack) has nothing left waiting to be told of: the push
    itself is then what the model saw."""
    mid = run.route(run.mid_id)
    pushed = mid is not None and mid.origin == "push" and run.acked(run.mid_id)
    assert pushed or run.notice_seen(), (
        f"{_where(run)}: no model request carries the '[agent-mesh] N unread messages … wait' "
        "notice (the mid-session message waited while tools were called)"
    )


def test_a_planted_end_marker_is_defanged(run: harness.HostRun) -> None:
    text = run.framed_text(run.start_id)
    if text is None:
        pytest.fail(f"{_where(run)}: the message waiting at start never reached the model")
    begin = text.index(f"<<<BEGIN MESH MESSAGE #{run.start_id}>>>")
    end = text.index(f"<<<END MESH MESSAGE #{run.start_id}>>>", begin)
    body = text[begin:end]
    assert "\u2039\u2039\u2039END MESH MESSAGE #1" in body and "forged end" in body, (
        f"{_where(run)}: the planted marker did not arrive defanged inside the frame: {body!r}"
    )


def test_no_session_left_active_after_the_host_exits(run: harness.HostRun) -> None:
    left = run.active_after_exit()
    assert not left, (
        f"{_where(run)}: {len(left)} session(s) of the workspace still active after the host "
        f"exited (clients: {[s.get('metadata') for s in left]}). Needs the core's liveness "
        "by pid and one mesh session per host session (hooks must not revive a stopped one)."
    )


def test_hooks_put_mail_waiting_at_start_in_front_of_the_model(run: harness.HostRun) -> None:
    """Where `mesh install` adds hooks, the session-start hook delivers the waiting
    message before the model calls any tool (Copilot's extension pushes it instead)."""
    route = run.route(run.start_id)
    expected = "push" if run.host == "copilot" else "hook"
    assert route is not None and route.origin == expected, (
        f"{_where(run)}: the message waiting at start reached the model through "
        f"{route.origin if route else 'nothing'}, not the {expected}"
        + (f" (hooks the host ran: {run.hook_runs})" if run.host == "codex" else "")
    )


def test_codex_runs_no_hook_the_user_has_not_trusted(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Why Codex hooks never delivered mail: Codex 0.171 runs a hook from hooks.json only
    once the user trusted it (its start-up review, or `/hooks`); `codex exec` skips
    untrusted ones without a word. Measured: the same run without that one-time step."""
    untrusted = harness.run_host(
        "codex", tmp_path_factory.mktemp("codex-untrusted"), {}, trust_hooks=False
    )
    if untrusted.skip_reason:
        pytest.skip(untrusted.skip_reason)
    assert untrusted.hook_trust_before == ["untrusted"] * 4, untrusted.hook_trust_before
    assert "Trust all and continue" in untrusted.install_output  # `mesh install` says so
    assert untrusted.hook_runs == [], f"{_where(untrusted)}: ran {untrusted.hook_runs}"
    route = untrusted.route(untrusted.start_id)
    assert route is not None and route.origin == "tool", _where(untrusted)
    trusted = _runs.get("codex")
    if trusted is not None and trusted.ran:
        assert {"SessionStart", "UserPromptSubmit", "Stop"} <= set(trusted.hook_runs)


def _claude(run: harness.HostRun) -> None:
    if run.host != "claude":
        pytest.skip("the Stop hook's block-once check runs on Claude Code")


def test_claude_shows_no_stop_hook_error(run: harness.HostRun) -> None:
    """Claude Code shows "Stop hook error" for a hook that failed (it records that as a
    hook_non_blocking_error in the transcript); a Stop block is a hook_blocking_error
    with our reason. Every `mesh hook` run must be a success or that deliberate block."""
    _claude(run)
    outcomes = run.hook_outcomes()
    events = {o.get("hookEvent") for o in outcomes}
    assert {"SessionStart", "Stop"} <= events, f"{_where(run)}: hook runs seen: {events}"
    for outcome in outcomes:
        kind, event = outcome.get("type"), outcome.get("hookEvent")
        blocked = kind == "hook_blocking_error" and event == "Stop"
        reason = json.dumps(outcome.get("blockingError"))
        assert kind in ("hook_success", "hook_additional_context") or (
            blocked and "Before you stop" in reason
        ), f"{_where(run)}: {event} hook: {kind}: {outcome.get('stderr') or reason}"
    for where, text in (("stdout", run.stdout), ("stderr", run.stderr)):
        assert "hook error" not in text.lower(), f"{_where(run)}: a hook error in its {where}"


def test_claude_stop_hook_blocks_once_then_respects_stop_hook_active(
    run: harness.HostRun,
) -> None:
    """An urgent message waiting at Stop: the hook blocks, and the model gets it. Another
    urgent one waiting at the next Stop (`stop_hook_active` true): the hook lets the turn
    end, and that message stays unread for the next session."""
    _claude(run)
    assert run.returncode == 0, _where(run)
    late = run.route(run.late_id)
    assert late is not None, f"{_where(run)}: the Stop hook's block never reached the model"
    assert run.later_id, f"{_where(run)}: the Stop hook never took the urgent message"
    after_block = run.model_requests[late.request]
    # The second message waited before the model answered the block, so before the
    # second Stop ran: had the hook ignored stop_hook_active, it would have blocked again.
    assert run.later_sent_at < after_block.at, _where(run)
    assert run.route(run.later_id) is None, f"{_where(run)}: the Stop hook blocked twice"
    assert run.later_id in run.unread_after_exit, _where(run)


@pytest.mark.parametrize("key", [k for k in KEYS if hostbin.PACKAGES[k].host == "claude"])
def test_claude_waits_for_a_server_slow_to_start(
    key: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On a loaded machine `mesh mcp` may take seconds to answer. As installed (the entry
    has `alwaysLoad`), Claude Code waits for it before the first request (up to its
    MCP_CONNECT_TIMEOUT_MS, 5 s by default) instead of connecting it in the background:
    measured with the server started 2 s late; without `alwaysLoad` that first request
    has no mesh tool."""
    slow = harness.run_host(key, tmp_path_factory.mktemp(f"{key}-slow"), {}, slow_start=2.0)
    if slow.skip_reason:
        pytest.skip(slow.skip_reason)
    assert slow.first_tools(), f"{_where(slow)}: no mesh tool in the first request"
    assert not any("(deferred)" in t for t in slow.first_tools()), _where(slow)


def test_codex_hooks_alone_deliver_mail_without_the_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Codex with the hooks but without `mesh mcp` (the server entry taken out): the
    SessionStart hook hands the waiting message to the first model request, framed, and
    the session its hooks registered is stopped by its SessionEnd hook when Codex exits."""
    alone = harness.run_host(
        "codex", tmp_path_factory.mktemp("codex-hooks-only"), {}, without_server=True
    )
    if alone.skip_reason:
        pytest.skip(alone.skip_reason)
    assert alone.returncode == 0, f"{_where(alone)}\n{alone.stderr[-2000:]}"
    assert not alone.first_tools(), _where(alone)  # no server: no mesh tool offered
    route = alone.route(alone.start_id)
    assert route is not None and (route.request, route.origin) == (0, "hook"), _where(alone)
    framing = harness._framed_ok(alone.framed_text(alone.start_id), alone.start_id)
    assert framing is not None and all(framing.values()), framing
    assert alone.start_id not in alone.unread_after_exit
    assert not alone.active_after_exit(), f"{_where(alone)}: the hook's session stayed active"


def test_codex_idle_session_is_woken_by_a_message(
    tmp_path_factory: pytest.TempPathFactory, results: dict[str, Any]
) -> None:
    """The interactive `codex` TUI, idle after its first turn: a message sent to it leads,
    with nobody typing, to a model request that carries the unread notice (queued by
    `mesh mcp` with `codex queue`) and the framed message (the UserPromptSubmit hook of
    that turn); the message is read afterwards. Without the wake (`--no-wake`) nothing
    comes in the same time: the message waits unread."""
    woken = idle.run_codex_idle(tmp_path_factory.mktemp("codex-idle"))
    if woken.skip_reason:
        pytest.skip(woken.skip_reason)
    where = f"codex idle ({woken.version}); screen at {tmp_path_factory.getbasetemp()}"
    assert woken.idle_reached, f"{where}: the first turn never ended"
    seconds = woken.woke_after
    # Read by table.py for the codex row, whichever test ran first.
    results["codex-idle"] = {
        "idle": (
            "woken: `mesh mcp` queues a notice with `codex queue`; a turn starts "
            f"({seconds:.0f} s after the send)"
            if seconds is not None and woken.carried("unread message")
            else "**not woken**: waits for the next prompt (UserPromptSubmit hook)"
        )
    }
    assert woken.queued >= 1, f"{where}: `mesh mcp` queued nothing into Codex"
    assert woken.after, f"{where}: no model request within {idle.WAIT:.0f}s of the send"
    assert woken.carried("[agent-mesh] 1 unread message from other agents wait"), where
    assert woken.carried(f"<<<BEGIN MESH MESSAGE #{woken.message_id}>>>"), where
    assert woken.read_after, f"{where}: the message is still unread"
    assert "codex wake (on" in woken.install_output

    quiet = idle.run_codex_idle(tmp_path_factory.mktemp("codex-idle-off"), wake=False)
    assert quiet.idle_reached
    assert not quiet.after, "with --no-wake a model request still came"
    assert quiet.queued == 0
    assert not quiet.read_after
    assert "codex wake: off" in quiet.install_output


def test_two_codex_tuis_on_one_codex_home_are_two_sessions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two interactive `codex` sessions of one CODEX_HOME share one app-server daemon (the
    host process of both threads' hooks and servers). Each is its own mesh session, keyed
    on its thread id; a message sent to one reaches only that thread's model requests;
    when A quits, its session is stopped within seconds (the installed
    `thread_unload_delay_secs = 0`) and the mail left for it reaches B's model."""
    two = two_tuis.run_two_tuis(tmp_path_factory.mktemp("codex-two"))
    if two.skip_reason:
        pytest.skip(two.skip_reason)
    where = f"codex two TUIs ({two.version}); screens in {tmp_path_factory.getbasetemp()}"
    assert two.idle_reached, f"{where}: a first turn never ended"
    assert set(two.threads) == {"A", "B"}, f"{where}: threads seen {two.threads}"
    servers = [s for s in two.sessions if s["metadata"].get("client") == "mesh-mcp"]
    assert {s["metadata"].get("host_session_id") for s in servers} == set(two.threads.values()), (
        f"{where}: {two.sessions}"
    )
    assert [s for s in two.sessions if s["metadata"].get("client") == "mesh-hook"] == []
    for mine, other in (("A", "B"), ("B", "A")):
        seen = two.thread_requests(mine)
        assert any(two_tuis.TEXT[mine] in r.text for r in seen), (
            f"{where}: {mine} never got its own"
        )
        assert not any(two_tuis.TEXT[other] in r.text for r in seen), (
            f"{where}: {mine} got {other}'s"
        )
    assert two.stopped_after is not None and two.stopped_after < 10, where
    assert two.left_to == "B", f"{where}: the mail left for A went to {two.left_to}"
    assert any(two_tuis.LEFT in r.text for r in two.thread_requests("B")), where


def test_copilot_idle_session_gets_each_message_pushed(
    tmp_path_factory: pytest.TempPathFactory, results: dict[str, Any]
) -> None:
    """The interactive `copilot` TUI, idle after its first turn: each message a peer sends
    starts a turn with nobody typing, and the model request of that turn carries it
    framed; the extension logged each step (received, send, accepted) and the message is
    read afterwards (acknowledged). What each step took is recorded for the README's
    performance section, with a prompt typed into the same session as the reference
    (Copilot's own time for a prompt); no time is asserted."""
    pushed = push.run_copilot_push(tmp_path_factory.mktemp("copilot-push"))
    if pushed.skip_reason:
        pytest.skip(pushed.skip_reason)
    where = f"copilot idle ({pushed.version}); screen at {tmp_path_factory.getbasetemp()}"
    assert pushed.idle_reached, f"{where}: the first turn never ended"
    total = push.median([s.after("request") for s in pushed.samples])
    # Read by table.py: the copilot row's idle column and the performance section.
    results["copilot-idle"] = {
        "idle": (
            "pushed: the extension's session.send starts a turn "
            f"({total / 1000:.1f} s after the send, median of {len(pushed.samples)})"
            if total is not None
            else "**not pushed**: waits for the next prompt"
        ),
        "push": pushed.to_json(),
    }
    assert len(pushed.samples) == push.SAMPLES, where
    for sample in pushed.samples:
        assert sample.request_at is not None, (
            f"{where}: message #{sample.message_id} reached no model request within "
            f"{push.WAIT:.0f}s"
        )
        missing = [step for step in push.STEPS if sample.after(step) is None]
        assert not missing, f"{where}: #{sample.message_id}: no {missing} in the logs"
        assert sample.read, f"{where}: #{sample.message_id} is still unread (never acked)"
    assert all(t is not None for t in pushed.typed), f"{where}: a typed prompt never went out"

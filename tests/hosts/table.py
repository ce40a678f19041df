"""Turn the real-host suite's results into the README's "what each host gets" table and
its "host push" figures.

    .venv/bin/python tests/hosts/table.py [--results PATH] [--readme README.md]

Reads the JSON the suite writes (default ~/.cache/agent-mesh/hosts/results.json),
prints the Markdown, and with --readme replaces the table between the
`<!-- hosts-table:start -->` and `<!-- hosts-table:end -->` lines, and the push figures
between `<!-- hosts-push:start -->` and `<!-- hosts-push:end -->` when both are there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

START, END = "<!-- hosts-table:start -->", "<!-- hosts-table:end -->"
PUSH_START, PUSH_END = "<!-- hosts-push:start -->", "<!-- hosts-push:end -->"
PUSH_TARGET_MS = 350.0
IDLE_SUFFIX = "-idle"
ORDER = ["claude-2.1.197", "claude-2.1.332", "codex", "gemini", "copilot"]
NAMES = {
    "claude": "Claude Code",
    "codex": "Codex",
    "gemini": "Gemini CLI",
    "copilot": "Copilot CLI",
}
ROUTE = {
    "hook": "hook context",
    "tool": "tool result (check_inbox)",
    "push": "pushed turn",
    "context": "context",
}
DEFAULT = Path(
    os.environ.get(
        "AGENT_MESH_HOSTS_RESULTS",
        Path.home() / ".cache" / "agent-mesh" / "hosts" / "results.json",
    )
)


def _tools(r: dict[str, Any]) -> str:
    tools = r["tools_seen"]
    if not tools:
        return "**none** in the first request"
    deferred = any("(deferred)" in t for t in tools)
    return f"{len(tools)} in the first request" + (
        " (by name; schemas via ToolSearch)" if deferred else ""
    )


def _route(route: str | None, framed: dict[str, bool] | None) -> str:
    if route is None:
        return "**not seen**"
    ok = framed is not None and all(framed.values())
    return ROUTE.get(route, route) + ("" if ok else " (framing incomplete)")


def _notice(r: dict[str, Any]) -> str:
    if r["notice_seen"]:
        return "yes"
    if r["mid_route"] == "push" and r.get("mid_acked"):
        # Nothing waited while tools ran: the message was pushed and marked read on the ack.
        return "not needed: pushed and acknowledged"
    return "**no**"


def row(r: dict[str, Any]) -> str:
    found = re.search(r"\d+\.\d+\.\d+", r["version"] or "")
    host = f"{NAMES.get(r['host'], r['host'])} {found.group(0) if found else '?'}"
    if not r["ran"]:
        return f"| {host} | skipped: {r['skip_reason']} | | | | | |"
    push = (
        "yes (session.send)"
        if r["mid_route"] == "push"
        else "no: " + _route(r["mid_route"], r["mid_framed"])
    )
    hooks = {
        "copilot": "extension hook (session start)",
    }.get(
        r["host"],
        "yes, delivered"
        if "hook" in (r["start_route"], r["mid_route"])
        else "installed, none fired with mail",
    )
    if r.get("hook_trust_before") and "untrusted" in r["hook_trust_before"]:
        hooks += " once trusted in Codex (untrusted: never run)"
    left = r["active_after_exit"]
    return (
        "| "
        + " | ".join(
            [
                host,
                _tools(r),
                _notice(r),
                _route(r["start_route"], r["start_framed"]),
                push,
                r["idle"],
                hooks,
                "none" if not left else f"**{left} left active**",
            ]
        )
        + " |"
    )


def table(results: dict[str, Any]) -> str:
    lines = [
        "| host (version run) | tools seen | unread notice seen | mail waiting at start | push while running | message sent while idle | hooks | sessions active after exit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    # "<key>-idle": what a separate run measured for that host's idle column.
    measured = {
        k.removesuffix(IDLE_SUFFIX): v for k, v in results.items() if k.endswith(IDLE_SUFFIX)
    }
    runs = {k: v for k, v in results.items() if not k.endswith(IDLE_SUFFIX)}
    keys = [k for k in ORDER if k in runs] + [k for k in runs if k not in ORDER]
    lines += [row({**runs[k], **measured.get(k, {})}) for k in keys]
    return "\n".join(lines)


PUSH_STEPS = {
    "woke": "`mesh mcp` saw the commit (its participant woke on the file-system event)",
    "pushing": "`mesh mcp` writes the notification (inbox read, message framed)",
    "received": "the extension read the notification",
    "send": "the extension called `session.send`",
    "accepted": "Copilot accepted it (`session.send` resolved)",
    "user_message": "Copilot recorded it as the user's turn (`user.message` in its session log)",
    "turn_start": "Copilot started the turn (`assistant.turn_start`)",
    "request": "**the model request carrying it**",
}


def _median(values: Sequence[float | None]) -> float | None:
    found = sorted(v for v in values if v is not None)
    if not found:
        return None
    mid = len(found) // 2
    return found[mid] if len(found) % 2 else (found[mid - 1] + found[mid]) / 2


def _spread(values: list[float | None]) -> tuple[str, str]:
    found = [v for v in values if v is not None]
    middle = _median(found)
    if middle is None:
        return "—", "—"
    return f"{middle:,.0f}", f"{min(found):,.0f}–{max(found):,.0f}"


def push_block(results: dict[str, Any]) -> str | None:
    """The Copilot push figures (test_copilot_idle_session_gets_each_message_pushed), or
    None when the results hold none."""
    data = (results.get("copilot-idle") or {}).get("push")
    if not data or not data.get("samples"):
        return None
    samples = data["samples"]
    found = re.search(r"\d+\.\d+\.\d+", data.get("version") or "")
    before, after = data.get("load") or [0.0, 0.0]
    head = (
        f"Copilot CLI {found.group(0) if found else '?'}, interactive and idle, "
        f"{len(samples)} messages one after another (load average {before:.1f} before, "
        f"{after:.1f} after); milliseconds after `Mesh.send` returned (the commit):"
    )
    lines = [
        head,
        "",
        "| step | median (ms) | range (ms) |",
        "| --- | --- | --- |",
    ]
    for step, label in PUSH_STEPS.items():
        middle, spread = _spread([s.get(step) for s in samples])
        lines.append(f"| {label} | {middle} | {spread} |")
    middle, spread = _spread(data.get("typed") or [])
    lines.append(
        "| reference: a prompt typed into the same session, Enter → its model request "
        f"| {middle} | {spread} |"
    )
    total = _median([s.get("request") for s in samples])
    typed = _median(data.get("typed") or [])
    ours = _median([s.get("send") for s in samples])
    notes = []
    if total is not None and typed:
        notes.append(f"push ÷ typed prompt: {total / typed:.2f}×")
    if total is not None and ours is not None:
        notes.append(
            f"ours (commit → `session.send`): {ours:.0f} ms, {100 * ours / total:.1f} % of it"
        )
    if total is not None:
        verdict = "PASS" if total <= PUSH_TARGET_MS else "MISS"
        notes.append(f"target ≤ {PUSH_TARGET_MS:.0f} ms: {verdict}")
    lines += ["", "; ".join(notes) + "."]
    headless = results.get("copilot") or {}
    busy = headless.get("mid_seconds")
    if busy is not None:
        which = "the next model request" if headless.get("mid_next") else "a later model request"
        lines += [
            "",
            (
                "In a running turn (the headless run of the table above): the message sent "
                f"while the model was answering was in {which}, {busy * 1000:,.0f} ms after "
                "the send."
            ),
        ]
    return "\n".join(lines)


def _replace(text: str, start: str, end: str, block: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=DEFAULT)
    parser.add_argument("--readme", type=Path)
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(
            f"no results at {args.results}: run `pytest -m hosts tests/hosts` first",
            file=sys.stderr,
        )
        return 1
    text = table(results)
    pushed = push_block(results)
    print(text)
    if pushed is not None:
        print(f"\n{pushed}")
    if args.readme:
        readme = args.readme.read_text(encoding="utf-8")
        if START not in readme or END not in readme:
            print(f"{args.readme} has no {START} … {END} block", file=sys.stderr)
            return 1
        readme = _replace(readme, START, END, text)
        if pushed is not None and PUSH_START in readme and PUSH_END in readme:
            readme = _replace(readme, PUSH_START, PUSH_END, pushed)
        args.readme.write_text(readme, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Turn the real-host suite's results into the README's "what each host gets" table.

    .venv/bin/python tests/hosts/table.py [--results PATH] [--readme README.md]

Reads the JSON the suite writes (default ~/.cache/agent-mesh/hosts/results.json),
prints the Markdown table, and with --readme replaces the table between the
`<!-- hosts-table:start -->` and `<!-- hosts-table:end -->` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

START, END = "<!-- hosts-table:start -->", "<!-- hosts-table:end -->"
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
                "yes" if r["notice_seen"] else "**no**",
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
    keys = [k for k in ORDER if k in results] + [k for k in results if k not in ORDER]
    lines += [row(results[k]) for k in keys]
    return "\n".join(lines)


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
    print(text)
    if args.readme:
        readme = args.readme.read_text(encoding="utf-8")
        if START not in readme or END not in readme:
            print(f"{args.readme} has no {START} … {END} block", file=sys.stderr)
            return 1
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
        args.readme.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`mesh`: the command line for people, scripts and cron jobs (docs/contract.md §5.1).

Thin on purpose: parse the arguments, call `Mesh`, print. Every rule lives in
mesh_core; this file only decides how a result or a refusal is shown and which exit
code it gives (0 done, 1 refused or not found, 2 usage, 3 database unusable). It is the
only place that prints: the core and the agents' modules return what to show.
Untrusted text (names, descriptions, bodies) is shown through `safe_text`/`safe_line`
as rich `Text`, never as markup.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from mesh_core.clock import parse_ts_or_none
from mesh_core.delivery import party, sent_summary
from mesh_core.errors import InvalidContent, MeshError, WaitTimedOut
from mesh_core.identity import default_person_name
from mesh_core.lifecycle import borrowed, claim, keep_alive
from mesh_core.mesh import Mesh
from mesh_core.models import Agent, Message, Status
from mesh_core.present import STATUS_GLYPHS, elapsed, priority_mark
from mesh_core.rules import BROADCAST, CLIENT_CLI, KINDS, validate_message_id
from mesh_core.text import safe_line, safe_text

if TYPE_CHECKING:  # rich loads only when a command renders a table (it costs a send)
    from rich.console import Console
    from rich.table import Table

CLIENT = CLIENT_CLI
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A combination of arguments argparse cannot check by itself (exit 2 with usage)."""


# -- output helpers ---------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    """A console on the current stdout/stderr; rich drops colour when it is not a TTY."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """rich would exit 1 (our "refused"); let `main` handle it like any other write."""
            self.quiet = True
            raise BrokenPipeError

    return _Console(
        file=sys.stderr if stderr else sys.stdout, highlight=False, markup=False, emoji=False
    )


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def _warn(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"warning: {safe_line(line)}", file=sys.stderr)


def ago(when: str | None, now: datetime) -> str:
    """`12s ago`, `3m ago`, `2h ago`, `4d ago`; other clients' odd values shown as they are."""
    seen = parse_ts_or_none(when)
    if seen is None:
        return safe_line(when or "never")
    if seen > now:
        return "just now"
    return f"{elapsed(when, now)} ago"


def _local_time(stamp: str) -> str:
    when = parse_ts_or_none(stamp)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else safe_line(stamp)


def _field(value: object) -> str:
    """Any other field a client wrote (an id, a priority, a timestamp), on one line and
    with its control sequences made visible: another client may write any text there."""
    return safe_line(value, 80)


def _agents_table(agents: Sequence[Agent], now: datetime) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("", "name", "description", "kind", "unread", "last heartbeat"):
        table.add_column(column, overflow="fold")
    for agent in agents:
        glyph, style = STATUS_GLYPHS[agent.status]
        stopped = agent.status is Status.STOPPED
        table.add_row(
            Text(glyph, style=style),
            Text(safe_line(agent.agent_name), style=style if stopped else "bold"),
            Text(safe_line(agent.agent_description or "", 60), style="dim"),
            Text(safe_line(agent.kind)),
            Text(_field(agent.unread), style="bold" if agent.unread else "dim"),
            Text(f"{ago(agent.last_heartbeat, now)} ({agent.status.value})"),
        )
    return table


def _messages_table(messages: Sequence[Message]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold", show_lines=False)
    for column in ("id", "from → to", "priority", "time", "content"):
        table.add_column(column, overflow="fold", no_wrap=column != "content")
    for message in messages:
        reply = f" ↳#{_field(message.original_message_id)}" if message.original_message_id else ""
        table.add_row(
            Text(f"#{_field(message.message_id)}{reply}"),
            Text(
                f"{party(message.sender_name, message.sender_session_id)} → "
                f"{party(message.recipient_name, message.recipient_session_id)}"
            ),
            Text(_field(message.priority), style=priority_mark(message.priority)[1]),
            Text(_local_time(message.created_at), style="dim"),
            Text(safe_text(message.content)),
        )
    return table


def _say(line: str, stderr: bool = False) -> None:
    """One plain line (names in it are already made safe): no rich for a send's answer."""
    stream = sys.stderr if stderr else sys.stdout
    stream.write(line + "\n")
    stream.flush()


# -- identity ---------------------------------------------------------------------------


def _acting_as(mesh: Mesh, name: str | None) -> AbstractContextManager[Agent]:
    """Be `name` (else the person's default identity) for one command."""
    return borrowed(
        mesh,
        name,
        client=CLIENT,
        on_release_error=lambda exc: _warn([f"could not mark this session stopped: {exc}"]),
    )


def _read_content(content: str) -> str:
    """CONTENT, or all of stdin for `-` (strict UTF-8: a wrong encoding is refused, not
    guessed at; trailing newlines dropped, as a shell pipe adds one)."""
    if content != "-":
        return content
    raw = sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidContent(
            f"standard input is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); convert it first, e.g. `iconv -t UTF-8 file | mesh send ... -`"
        ) from exc
    return text.rstrip("\r\n")


# -- sub-commands -----------------------------------------------------------------------


def _cmd_agents(args: argparse.Namespace, mesh: Mesh) -> int:
    agents = mesh.agents(args.status or "online")
    if args.json:
        _print_json([agent.to_json() for agent in agents])
    elif agents:
        _console().print(_agents_table(agents, mesh.clock.now()))
    else:
        print(f"no {args.status or 'active or stale'} agents on {mesh.path}")
    return 0


def _cmd_send(args: argparse.Namespace, mesh: Mesh) -> int:
    if args.wait is not None and args.target == BROADCAST:
        raise UsageError("--wait needs one recipient: it cannot wait on a broadcast `*`")
    content = _read_content(args.content)
    with _acting_as(mesh, args.sender) as me:
        sent = mesh.dispatch(me.session_id, args.target, content, args.priority, args.new_thread)
        _warn(w for message in sent for w in message.warnings)
        if args.wait is None:
            if args.json:
                data = [m.to_json(with_warnings=True) for m in sent]
                _print_json(data if args.target == BROADCAST else data[0])
            else:
                for message in sent:
                    _say(sent_summary(message, "sent"))
            return 0
        message = sent[0]
        if not args.json:
            _say(
                sent_summary(message, "sent") + f"; waiting up to {args.wait:g} s for a reply",
                stderr=True,
            )
        reply = mesh.wait_for_reply(
            me.session_id, message.message_id, args.wait, keep_alive(mesh, me.session_id)
        )
        if reply is None:
            raise WaitTimedOut(message.message_id, args.wait)
        if args.json:
            _print_json(message.to_json(with_warnings=True) | {"reply": reply.to_json()})
        else:
            _console().print(_messages_table([reply]))
    return 0


def _cmd_reply(args: argparse.Namespace, mesh: Mesh) -> int:
    message_id = validate_message_id(args.message_id)
    content = _read_content(args.content)
    with _acting_as(mesh, args.sender) as me:
        message = mesh.reply(me.session_id, message_id, content, args.priority)
    _warn(message.warnings)
    if args.json:
        _print_json(message.to_json(with_warnings=True))
    else:
        _say(sent_summary(message, "replied"))
    return 0


def _cmd_show(args: argparse.Namespace, mesh: Mesh) -> int:
    messages = mesh.thread(validate_message_id(args.message_id))
    thread_id = messages[0].thread_id
    if args.json:
        _print_json({"thread_id": thread_id, "messages": [m.to_json() for m in messages]})
    else:
        from rich.text import Text

        console = _console()
        count = f"{len(messages)} message{'s' if len(messages) != 1 else ''}"
        console.print(Text(f"thread #{_field(thread_id)} ({count})", style="bold"))
        console.print(_messages_table(messages))
    return 0


def _cmd_inbox(args: argparse.Namespace, mesh: Mesh) -> int:
    if args.follow:
        return _follow_inbox(args, mesh)
    with _acting_as(mesh, args.sender) as me:
        # Each message is serialised inside the take, before it is marked read: one that
        # cannot be is set aside unread (and named), never lost with the rest.
        taken = mesh.take(me.session_id, lambda m: json.dumps(m.to_json()))
    messages = list(taken.messages)
    _warn(taken.set_aside)
    more = taken.more_note("run `mesh inbox` again")
    if more:
        _warn([more])
    if args.json:
        sys.stdout.write("[" + ", ".join(taken.rendered) + "]\n")
        sys.stdout.flush()
    elif messages:
        _console().print(_messages_table(messages))
    else:
        print(f"no unread messages for {safe_line(me.agent_name)}")
    return 0


def _follow_inbox(args: argparse.Namespace, mesh: Mesh) -> int:
    """Stay registered and print each message as it lands, until SIGINT or SIGTERM."""
    from mesh_core.participant import Participant

    found = claim(mesh, args.sender, client=CLIENT)
    agent = found.agent
    output_lock = threading.Lock()
    broken = threading.Event()
    console = _console()

    def show(message: Message) -> None:
        with output_lock:
            try:
                if args.json:
                    sys.stdout.write(json.dumps(message.to_json()) + "\n")
                    sys.stdout.flush()
                else:
                    console.print(_messages_table([message]))
            except OSError:  # the reader went away (`| head`): stop taking mail
                broken.set()

    # Re-registering keeps the session as it is (a person's TUI stays `human`); only a
    # borrowed session's process details (pid, host, client) become this process's.
    participant = Participant(
        mesh,
        agent.agent_name,
        agent.kind if agent.kind in KINDS else "cli",
        client=CLIENT,
        description=agent.agent_description,
        cwd=agent.cwd,
        session_id=agent.session_id,
        metadata=agent.metadata if found.was_active else None,
        on_message=show,
    )
    try:
        participant.start()
        if not args.json:
            _say(f"following the inbox of {safe_line(agent.agent_name)}; ctrl+c to stop", True)
        while not broken.wait(0.5):
            pass
        return EXIT_BROKEN_PIPE
    finally:
        participant.stop(deregister=not found.was_active)


def _cmd_status(args: argparse.Namespace, mesh: Mesh) -> int:
    stats = mesh.stats()
    if args.json:
        _print_json(stats)
        return 0
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    sessions = ", ".join(f"{count} {status}" for status, count in stats["sessions"].items())
    rows = {
        "database": stats["db_path"],
        "schema version": str(stats["schema_version"]),
        "size": f"{stats['db_bytes']:,} bytes (+ {stats['wal_bytes']:,} bytes WAL)",
        "sessions": sessions,
        "messages": f"{stats['messages']:,} ({stats['unread']:,} unread)",
        "last clean-up": stats["last_cleanup"] or "never",
        "stale agents": ", ".join(safe_line(n) for n in stats["stale"]) or "none",
        f"flooded (> {mesh.config.flood_threshold} unread)": (
            ", ".join(safe_line(n) for n in stats["flooded"]) or "none"
        ),
    }
    for key, value in rows.items():
        table.add_row(Text(key), Text(safe_line(value)))
    _console().print(table)
    return 0


def _cmd_cleanup(args: argparse.Namespace, mesh: Mesh) -> int:
    report = mesh.cleanup()
    if args.json:
        _print_json(report.to_json())
    else:
        print(
            f"stopped {report.stopped_sessions} silent sessions, purged "
            f"{report.purged_read} old read messages, dropped {report.expired_unread} "
            "expired unread messages"
        )
    return 0


def _cmd_mcp(args: argparse.Namespace, mesh: Mesh) -> int:
    from mesh_agents.mcp_server import serve  # the MCP SDK loads only for this command

    return serve(mesh, args.name, channel=args.channel)


def _cmd_hook(args: argparse.Namespace, mesh: Mesh) -> int:
    from mesh_agents.hooks import main_hook

    output = main_hook(mesh, args.event)
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()
    return 0


def _cmd_install(args: argparse.Namespace, mesh: None) -> int:
    from mesh_agents.install import run

    return run(
        args.client,
        db=args.db,
        dry_run=args.dry_run,
        hooks=not args.no_hooks,
        channel=args.channel,
        use_mcp=args.mcp,
        as_json=args.json,
    )


def _cmd_demo(args: argparse.Namespace, mesh: Mesh) -> int:
    """Simulated agents (labelled as such) on this database, until ctrl+c or --duration."""
    from mesh_agents.simulated import Demo

    demo = Demo(mesh, person=default_person_name())
    demo.seed()
    if args.json:
        _print_json({"db_path": str(mesh.path), "sessions": demo.sessions})
    else:
        print(
            f"mesh demo: {len(demo.sessions)} simulated agents on {mesh.path}; watch them "
            f"with `mesh-tui --db {mesh.path}`. ctrl+c stops them.",
            file=sys.stderr,
        )
    demo.run(threading.Event(), args.duration)
    return 0


# -- parser -----------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give zero or more seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `mesh` parser.

    Adding a sub-command is three lines here plus its function:

        p = sub.add_parser("name", parents=[common], help="what it does")
        p.add_argument(...)                      # its own options, if any
        p.set_defaults(func=_cmd_name)           # def _cmd_name(args, mesh) -> int

    `parents=[common]` gives it `--db` and `--json` after the sub-command name too.
    `main` opens the Mesh and passes it in; a command that must not open the database
    (it creates its own, or needs none) adds `open_mesh=False` to `set_defaults` and
    receives `mesh=None`. Raise a MeshError to refuse (exit 1), UsageError for a bad
    combination of arguments (exit 2).
    """
    parser = argparse.ArgumentParser(
        prog="mesh",
        description="agent-mesh: messages between AI coding agents on one machine.",
        epilog="exit codes: 0 done, 1 refused or not found, 2 usage, 3 database unusable",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="database file (else $AGENT_MESH_DB, else ~/.agent-mesh/agent-mesh.db)",
    )
    parser.add_argument("--json", action="store_true", help="machine output on stdout")
    # The same options after the sub-command name; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help="database file")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine output on stdout"
    )
    sender = argparse.ArgumentParser(add_help=False)
    sender.add_argument(
        "--from",
        dest="sender",
        metavar="NAME",
        help="act as this workspace (default: $AGENT_MESH_NAME, else your login name)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("agents", parents=[common], help="the roster (default: active and stale)")
    p.add_argument("--status", choices=("active", "stale", "stopped", "all"))
    p.set_defaults(func=_cmd_agents)

    p = sub.add_parser("send", parents=[common, sender], help="send a message")
    p.add_argument("target", metavar="TARGET", help="workspace name, session id, or * for all")
    p.add_argument("content", metavar="CONTENT", help="the message; - reads standard input")
    p.add_argument("--priority", default="normal", help="low, normal, high or urgent")
    p.add_argument("--new-thread", action="store_true", help="do not join the recent thread")
    p.add_argument(
        "--wait",
        type=_seconds,
        metavar="SECONDS",
        help="then wait this long for the reply and print it (exit 1 on time-out)",
    )
    p.set_defaults(func=_cmd_send)

    p = sub.add_parser("reply", parents=[common, sender], help="reply in a message's thread")
    p.add_argument("message_id", metavar="MESSAGE_ID")
    p.add_argument("content", metavar="CONTENT", help="the reply; - reads standard input")
    p.add_argument("--priority", default="normal", help="low, normal, high or urgent")
    p.set_defaults(func=_cmd_reply)

    p = sub.add_parser("show", parents=[common], help="a message with its whole thread")
    p.add_argument("message_id", metavar="MESSAGE_ID")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("inbox", parents=[common, sender], help="take your unread messages")
    p.add_argument(
        "--follow", action="store_true", help="stay registered and print each message as it arrives"
    )
    p.set_defaults(func=_cmd_inbox)

    p = sub.add_parser("status", parents=[common], help="database, sizes, counts, problems")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("cleanup", parents=[common], help="run the clean-up now")
    p.set_defaults(func=_cmd_cleanup)

    p = sub.add_parser("mcp", parents=[common], help="serve the MCP tools over stdio")
    p.add_argument(
        "--name", help="workspace name (default: $AGENT_MESH_NAME, else the working directory's)"
    )
    p.add_argument(
        "--channel",
        action="store_true",
        help="push each message as a Claude "
        "Code channel event (only for a claude started with channels on)",
    )
    p.set_defaults(func=_cmd_mcp)

    p = sub.add_parser(
        "hook",
        parents=[common],
        help="Claude Code hook: hand waiting messages to the session (hook JSON on stdin)",
    )
    p.add_argument(
        "event",
        nargs="?",
        metavar="EVENT",
        help="SessionStart, "
        "UserPromptSubmit, PostToolUse, Stop or SessionEnd (default: the "
        "input's hook_event_name)",
    )
    p.set_defaults(func=_cmd_hook)

    p = sub.add_parser("install", parents=[common], help="set up an agent CLI to join the mesh")
    p.add_argument(
        "client",
        choices=("copilot", "claude", "codex", "gemini", "json"),
        help="the agent CLI to configure (json: print a snippet for any MCP client)",
    )
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    p.add_argument(
        "--hooks",
        action="store_true",
        help="(the default) claude, codex, gemini: add the `mesh hook` hooks",
    )
    p.add_argument(
        "--no-hooks",
        action="store_true",
        help="claude, codex, gemini: leave the `mesh hook` hooks out",
    )
    p.add_argument(
        "--channel",
        action="store_true",
        help="claude: push messages as channel events (start claude with channels on)",
    )
    p.add_argument(
        "--mcp",
        action="store_true",
        help="copilot: an MCP server entry instead of the extension (no pushed delivery)",
    )
    p.set_defaults(func=_cmd_install, open_mesh=False)

    p = sub.add_parser("demo", parents=[common], help="run simulated agents for trying the TUI")
    p.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="stop after this long (default: until ctrl+c)",
    )
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `mesh` command; returns the exit code (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")  # never crash on an odd terminal
    parser = build_parser()
    args = parser.parse_args(argv)
    mesh: Mesh | None = None
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    try:
        if getattr(args, "open_mesh", True):
            mesh = Mesh(args.db)
        return int(args.func(args, mesh))
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except MeshError as exc:
        print(f"mesh: {safe_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mesh: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Nobody reads stdout any more: point it at /dev/null so exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        if mesh is not None:
            mesh.close()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like ctrl+c, so a borrowed session is still marked stopped."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())

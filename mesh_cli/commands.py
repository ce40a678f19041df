"""The `mesh` sub-commands: each takes the parsed arguments and a `Mesh`, calls the
core, shows the result through `render`, and returns the exit code. No rule is
checked here (docs/contract.md §5.1).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from mesh_core.delivery import sent_summary
from mesh_core.errors import InvalidContent, WaitTimedOut
from mesh_core.handover import hand_over, reader_gone
from mesh_core.identity import default_person_name
from mesh_core.lifecycle import borrowed, claim, keep_alive
from mesh_core.mailbox import Take
from mesh_core.mesh import Mesh
from mesh_core.models import Agent, Message
from mesh_core.rules import BROADCAST, CLIENT_CLI, KINDS, validate_message_id
from mesh_core.text import safe_line

from .render import field, messages_table, new_console, print_json, print_roster, say, warn

if TYPE_CHECKING:
    from rich.console import Console

CLIENT = CLIENT_CLI
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A combination of arguments argparse cannot check by itself (exit 2 with usage)."""


# -- identity ---------------------------------------------------------------------------


def _acting_as(mesh: Mesh, name: str | None) -> AbstractContextManager[Agent]:
    """Be `name` (else the person's default identity) for one command."""
    return borrowed(
        mesh,
        name,
        client=CLIENT,
        on_release_error=lambda exc: warn([f"could not mark this session stopped: {exc}"]),
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


def cmd_agents(args: argparse.Namespace, mesh: Mesh) -> int:
    agents = mesh.agents(args.status or "online")
    if args.json:
        print_json([agent.to_json() for agent in agents])
    elif agents:
        print_roster(new_console(), agents, mesh.clock.now())
    else:
        print(f"no {args.status or 'active or stale'} agents on {mesh.path}")
    return 0


def cmd_send(args: argparse.Namespace, mesh: Mesh) -> int:
    if args.wait is not None and args.target == BROADCAST:
        raise UsageError("--wait needs one recipient: it cannot wait on a broadcast `*`")
    content = _read_content(args.content)
    with _acting_as(mesh, args.sender) as me:
        sent = mesh.dispatch(me.session_id, args.target, content, args.priority, args.new_thread)
        warn(w for message in sent for w in message.warnings)
        if args.wait is None:
            if args.json:
                data = [m.to_json(with_warnings=True) for m in sent]
                print_json(data if args.target == BROADCAST else data[0])
            else:
                for message in sent:
                    say(sent_summary(message, "sent"))
            return 0
        message = sent[0]
        if not args.json:
            say(
                sent_summary(message, "sent") + f"; waiting up to {args.wait:g} s for a reply",
                stderr=True,
            )
        reply = mesh.wait_for_reply(
            me.session_id, message.message_id, args.wait, keep_alive(mesh, me.session_id)
        )
        if reply is None:
            raise WaitTimedOut(message.message_id, args.wait)
        if args.json:
            print_json(message.to_json(with_warnings=True) | {"reply": reply.to_json()})
        else:
            new_console().print(messages_table([reply]))
    return 0


def cmd_reply(args: argparse.Namespace, mesh: Mesh) -> int:
    message_id = validate_message_id(args.message_id)
    content = _read_content(args.content)
    with _acting_as(mesh, args.sender) as me:
        message = mesh.reply(me.session_id, message_id, content, args.priority)
    warn(message.warnings)
    if args.json:
        print_json(message.to_json(with_warnings=True))
    else:
        say(sent_summary(message, "replied"))
    return 0


def cmd_show(args: argparse.Namespace, mesh: Mesh) -> int:
    messages = mesh.thread(validate_message_id(args.message_id))
    thread_id = messages[0].thread_id
    if args.json:
        print_json({"thread_id": thread_id, "messages": [m.to_json() for m in messages]})
    else:
        from rich.text import Text

        console = new_console()
        count = f"{len(messages)} message{'s' if len(messages) != 1 else ''}"
        console.print(Text(f"thread #{field(thread_id)} ({count})", style="bold"))
        console.print(messages_table(messages))
    return 0


def cmd_inbox(args: argparse.Namespace, mesh: Mesh) -> int:
    if args.follow:
        return _follow_inbox(args, mesh)
    console = None if args.json else new_console()

    def deliver(batch: Take) -> bool:
        warn(batch.set_aside)
        more = batch.more_note("run `mesh inbox` again")
        if more:
            warn([more])
        if console is None:
            text = "[" + ", ".join(batch.rendered) + "]\n"
        elif batch.messages:
            text = _captured(console, list(batch.messages))
        else:
            text = f"no unread messages for {safe_line(me.agent_name)}\n"
        return hand_over(sys.stdout, text)

    with _acting_as(mesh, args.sender) as me:
        # Each message is serialised before the batch is written out, and the batch is
        # marked read only once the reader has it: a message that cannot be shown stays
        # unread (and is named); a reader that leaves unread (`| head -c 9`) loses nothing.
        _, delivered = mesh.hand_over(me.session_id, lambda m: json.dumps(m.to_json()), deliver)
    if not delivered:
        raise BrokenPipeError  # `main` exits 141; every message of the batch stays unread
    return 0


def _captured(console: Console, messages: list[Message]) -> str:
    """The table as the console would print it, to be handed over in one piece."""
    with console.capture() as capture:
        console.print(messages_table(messages))
    return capture.get()


def _follow_inbox(args: argparse.Namespace, mesh: Mesh) -> int:
    """Stay registered and print each message as it lands, until SIGINT or SIGTERM.

    One message at a time: each is marked read only once the reader has it (on a pipe,
    once it has drained it), so a reader that goes away (`| head -n 1`) leaves the rest
    unread, with at most the one being written lost to it (and still unread)."""
    from queue import Empty, SimpleQueue

    from mesh_core.participant import Participant

    found = claim(mesh, args.sender, client=CLIENT)
    agent = found.agent
    console = None if args.json else new_console()
    offered: SimpleQueue[Message] = SimpleQueue()

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
        on_message=offered.put,
        acknowledge=True,
    )
    try:
        participant.start()
        if console is not None:
            say(f"following the inbox of {safe_line(agent.agent_name)}; ctrl+c to stop", True)
        while True:
            try:
                message = offered.get(timeout=0.5)
            except Empty:
                if reader_gone(sys.stdout):
                    raise BrokenPipeError from None  # nobody reads: stop taking mail
                continue
            try:
                text = (
                    json.dumps(message.to_json()) + "\n"
                    if console is None
                    else _captured(console, [message])
                )
            except Exception as exc:  # noqa: BLE001 - one odd message must not end the rest
                warn([f"message #{message.message_id} could not be shown ({exc}); it stays unread"])
                continue
            if not hand_over(sys.stdout, text):
                raise BrokenPipeError  # not read: it and the rest stay unread
            participant.acknowledge(message.message_id)
    finally:
        participant.stop(deregister=not found.was_active)


def cmd_status(args: argparse.Namespace, mesh: Mesh) -> int:
    stats = mesh.stats()
    if args.json:
        print_json(stats)
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
    new_console().print(table)
    return 0


def cmd_cleanup(args: argparse.Namespace, mesh: Mesh) -> int:
    report = mesh.cleanup()
    if args.json:
        print_json(report.to_json())
    else:
        print(
            f"stopped {report.stopped_sessions} silent sessions, purged "
            f"{report.purged_read} old read messages, dropped {report.expired_unread} "
            "expired unread messages"
        )
    return 0


def cmd_mcp(args: argparse.Namespace, mesh: Mesh) -> int:
    from mesh_agents.mcp_server import serve  # the MCP SDK loads only for this command

    return serve(mesh, args.name, channel=args.channel)


def cmd_hook(args: argparse.Namespace, mesh: Mesh) -> int:
    from mesh_agents.hooks import main_hook

    output = main_hook(mesh, args.event)
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
        sys.stdout.flush()
    return 0


def cmd_install(args: argparse.Namespace, mesh: None) -> int:
    from mesh_agents.install import run

    shown = run(
        args.client,
        db=args.db,
        dry_run=args.dry_run,
        hooks=not args.no_hooks,
        channel=args.channel,
        use_mcp=args.mcp,
        as_json=args.json,
    )
    sys.stdout.write(shown)
    sys.stdout.flush()
    return 0


def cmd_demo(args: argparse.Namespace, mesh: Mesh) -> int:
    """Simulated agents (labelled as such) on this database, until ctrl+c or --duration."""
    from mesh_agents.simulated import Demo

    demo = Demo(mesh, person=default_person_name())
    demo.seed()
    if args.json:
        print_json({"db_path": str(mesh.path), "sessions": demo.sessions})
    else:
        print(
            f"mesh demo: {len(demo.sessions)} simulated agents on {mesh.path}; watch them "
            f"with `mesh-tui --db {mesh.path}`. ctrl+c stops them.",
            file=sys.stderr,
        )
    demo.run(threading.Event(), args.duration)
    return 0

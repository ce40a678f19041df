"""`mesh`: the command line for people, scripts and cron jobs (docs/contract.md §5.1).

Thin on purpose: this module parses the arguments and turns a refusal into its exit
code (0 done, 1 refused or not found, 2 usage, 3 database unusable); `commands` calls
the core, `render` shows the result. Every rule lives in mesh_core, and this package is
the only one that prints: the core and the agents' modules return what to show.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from mesh_core.errors import MeshError
from mesh_core.mesh import Mesh
from mesh_core.text import safe_line

from .commands import (
    EXIT_BROKEN_PIPE,
    UsageError,
    cmd_agents,
    cmd_cleanup,
    cmd_demo,
    cmd_hook,
    cmd_inbox,
    cmd_install,
    cmd_mcp,
    cmd_reply,
    cmd_send,
    cmd_show,
    cmd_status,
)

EXIT_INTERRUPTED = 130


# -- parser -----------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give zero or more seconds")
    return value


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` gives it ($COLUMNS first, then
    the terminal on stdout, else 80), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Formatter(argparse.HelpFormatter):
    """argparse builds a formatter for every `add_argument` (to check its metavar), and
    each asks shutil for the terminal's width: importing shutil loads zlib, bz2 and lzma,
    on every `mesh` run, for help that is almost never shown. Same width, asked of `os`."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help uses `_Formatter`; the sub-commands' parsers too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The `mesh` parser.

    Adding a sub-command is three lines here plus its function:

        p = sub.add_parser("name", parents=[common], help="what it does")
        p.add_argument(...)                      # its own options, if any
        p.set_defaults(func=cmd_name)           # commands.cmd_name(args, mesh) -> int

    `parents=[common]` gives it `--db` and `--json` after the sub-command name too.
    `main` opens the Mesh and passes it in; a command that must not open the database
    (it creates its own, or needs none) adds `open_mesh=False` to `set_defaults` and
    receives `mesh=None`. Raise a MeshError to refuse (exit 1), UsageError for a bad
    combination of arguments (exit 2).
    """
    parser = _Parser(
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
    common = _Parser(add_help=False)
    common.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help="database file")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine output on stdout"
    )
    sender = _Parser(add_help=False)
    sender.add_argument(
        "--from",
        dest="sender",
        metavar="NAME",
        help="act as this workspace (default: $AGENT_MESH_NAME, else your login name)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser("agents", parents=[common], help="the roster (default: all but stopped)")
    p.add_argument("--status", choices=("active", "stale", "other", "stopped", "all"))
    p.set_defaults(func=cmd_agents)

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
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("reply", parents=[common, sender], help="reply in a message's thread")
    p.add_argument("message_id", metavar="MESSAGE_ID")
    p.add_argument("content", metavar="CONTENT", help="the reply; - reads standard input")
    p.add_argument("--priority", default="normal", help="low, normal, high or urgent")
    p.set_defaults(func=cmd_reply)

    p = sub.add_parser("show", parents=[common], help="a message with its whole thread")
    p.add_argument("message_id", metavar="MESSAGE_ID")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("inbox", parents=[common, sender], help="take your unread messages")
    p.add_argument(
        "--follow", action="store_true", help="stay registered and print each message as it arrives"
    )
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("status", parents=[common], help="database, sizes, counts, problems")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("cleanup", parents=[common], help="run the clean-up now")
    p.set_defaults(func=cmd_cleanup)

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
    p.add_argument(
        "--no-wake",
        action="store_true",
        help="Codex: do not start a turn (`codex queue`) in an idle session when mail arrives",
    )
    p.set_defaults(func=cmd_mcp)

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
    p.set_defaults(func=cmd_hook)

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
    p.add_argument(
        "--no-wake",
        action="store_true",
        help="codex: never start a turn in an idle session when mail arrives (`codex queue`)",
    )
    p.set_defaults(func=cmd_install, open_mesh=False)

    p = sub.add_parser("demo", parents=[common], help="run simulated agents for trying the TUI")
    p.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="stop after this long (default: until ctrl+c)",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `mesh` command; returns the exit code (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")  # never crash on an odd terminal
    parser = build_parser()
    args = parser.parse_args(argv)
    _debug_log(os.environ.get("AGENT_MESH_LOG"))
    mesh: Mesh | None = None
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if on_main_thread else None
    # ctrl+c as our own exception, unless SIGINT is ignored or someone else handles it.
    own_sigint = on_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if own_sigint:
        signal.signal(signal.SIGINT, _interrupt)
    try:
        if getattr(args, "open_mesh", True):
            mesh = Mesh(args.db)
        return int(args.func(args, mesh))
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except MeshError as exc:
        print(f"mesh: {safe_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt):
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
        if own_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _debug_log(path: str | None) -> None:
    """`AGENT_MESH_LOG=FILE`: our loggers' lines, debug included, each with its epoch time
    and pid, appended to FILE instead of stderr — to see what a `mesh mcp` that a host
    started did, and when (a push's steps, say)."""
    if not path:
        return
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(created).6f %(process)d %(name)s %(levelname)s %(message)s")
    )
    for name in ("mesh_core", "mesh_agents", "mesh_cli"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


class Interrupted(BaseException):
    """ctrl+c, raised instead of KeyboardInterrupt. CPython (3.11 here) marks the
    interpreter to die by SIGINT at exit whenever a KeyboardInterrupt leaves an `exec`
    of source text, even one caught later: dataclasses build their methods that way, so
    a ctrl+c landing in an import (watchdog's, during `send --wait`) turned exit 130 into
    death by signal. Not an Exception, so no `except Exception` swallows it."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like ctrl+c, so a borrowed session is still marked stopped."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())

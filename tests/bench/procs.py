"""The other processes of the benchmark: a receiving participant, an idle one, a writer.

Run by `run.py` as `python procs.py ROLE DB [options]`; each talks to it by JSON lines on
stdout (and a `go` line on stdin for writers, so that all eight start together).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

from mesh_core import DEFAULT_CONFIG, Mesh, MeshError, Message, Participant


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _mesh(args: argparse.Namespace) -> Mesh:
    config = DEFAULT_CONFIG
    if args.watch_interval is not None:
        config = config.with_overrides(watch_interval=args.watch_interval)
    if args.safety_interval is not None:
        # Long safety net and inbox poll: a message that arrives at all came by the watch.
        config = config.with_overrides(
            watch_safety_interval=args.safety_interval, poll_interval=args.safety_interval
        )
    return Mesh(Path(args.db), config=config)


def _watch_report(me: Participant) -> dict[str, object]:
    """How the participant learnt of commits: the watch's state and event count."""
    watch = me.watch
    return {
        "watching": me.watching,
        "events": watch.events if watch is not None else 0,
        "reason": watch.reason if watch is not None else "file events off",
    }


def peer(args: argparse.Namespace) -> None:
    """A participant that reports when each message reached its callback (`time.time()`;
    the benchmark knows when it committed) and, when asked, replies at once."""
    mesh = _mesh(args)
    me: Participant

    def on_message(message: Message) -> None:
        got = time.time()
        body = json.loads(message.content)
        say(seq=body["seq"], got=got)
        if body.get("echo"):
            mesh.reply(me.session_id, message.message_id, json.dumps({"seq": body["seq"]}))
            say(seq=body["seq"], replied=time.time())

    me = Participant(mesh, args.name, on_message=on_message, file_events=not args.poll_only)
    me.start()
    _wait_watching(me, args)
    say(ready=me.session_id, **_watch_report(me))
    sys.stdin.readline()  # the benchmark closes stdin when it is done
    say(done=True, **_watch_report(me))
    me.stop()


def _wait_watching(me: Participant, args: argparse.Namespace) -> None:
    """The loop starts the watch on its own thread: wait (a few seconds at most) until it
    runs, so the first message is not measured against a watch still starting."""
    deadline = time.monotonic() + 5.0
    while not args.poll_only and not me.watching and time.monotonic() < deadline:
        if me.watch is not None and me.watch.reason is not None:
            return  # it could not start: the report says why
        time.sleep(0.005)


def idle(args: argparse.Namespace) -> None:
    """A participant with nothing to do: how much CPU does its watching cost?"""
    mesh = _mesh(args)
    with Participant(mesh, args.name, file_events=not args.poll_only) as me:
        time.sleep(1.0)  # let registration, the first poll and the clean-up pass
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(args.seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        report = _watch_report(me)
    say(cpu=cpu, wall=wall, threads=threading.active_count(), **report)


def writer(args: argparse.Namespace) -> None:
    """Send `count` messages under every rule as fast as possible, counting every error
    (a "database is locked" reaching us would be one)."""
    mesh = Mesh(Path(args.db))
    me = mesh.register(args.name)
    say(ready=me.session_id)
    sys.stdin.readline()
    errors: list[str] = []
    sent = 0
    start = time.time()
    for number in range(args.count):
        try:
            mesh.send(
                me.session_id, f"rcpt-{number % args.recipients:03d}", f"{args.name}-{number}"
            )
            sent += 1
        except (MeshError, sqlite3.Error) as exc:  # "database is locked" would be one
            errors.append(f"{type(exc).__name__}: {exc}")
    say(sent=sent, errors=errors[:5], error_count=len(errors), start=start, end=time.time())
    mesh.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=("peer", "idle", "writer"))
    parser.add_argument("db")
    parser.add_argument("--name", default="bench-peer")
    parser.add_argument("--watch-interval", type=float, default=None)
    parser.add_argument("--safety-interval", type=float, default=None)
    parser.add_argument("--poll-only", action="store_true", help="no file-system watch")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--recipients", type=int, default=100)
    args = parser.parse_args()
    {"peer": peer, "idle": idle, "writer": writer}[args.role](args)


if __name__ == "__main__":
    main()

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
    return Mesh(Path(args.db), config=config)


def peer(args: argparse.Namespace) -> None:
    """A participant that reports each message's delivery latency (the sender put its
    `time.time()` in the body) and, when asked, replies at once."""
    mesh = _mesh(args)
    me: Participant

    def on_message(message: Message) -> None:
        got = time.time()
        body = json.loads(message.content)
        say(seq=body["seq"], latency=got - body["t"])
        if body.get("echo"):
            mesh.reply(me.session_id, message.message_id, json.dumps({"seq": body["seq"]}))
            say(seq=body["seq"], replied=time.time())

    me = Participant(mesh, args.name, on_message=on_message)
    me.start()
    say(ready=me.session_id)
    sys.stdin.readline()  # the benchmark closes stdin when it is done
    me.stop()


def idle(args: argparse.Namespace) -> None:
    """A participant with nothing to do: how much CPU does its watching cost?"""
    mesh = _mesh(args)
    with Participant(mesh, args.name):
        time.sleep(1.0)  # let registration, the first poll and the clean-up pass
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(args.seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    say(cpu=cpu, wall=wall, threads=threading.active_count())


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
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--recipients", type=int, default=100)
    args = parser.parse_args()
    {"peer": peer, "idle": idle, "writer": writer}[args.role](args)


if __name__ == "__main__":
    main()

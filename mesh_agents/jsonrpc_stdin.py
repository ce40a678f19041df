"""MCP's stdio wire, one JSON-RPC message a line: stdin with lone surrogates made
decodable, and stdout that says when a line has reached the pipe.

`JSON.stringify` writes a string cut mid-emoji as a lone surrogate escape (`"\\ud83d"`).
Python's json accepts it, but the MCP SDK parses each line with pydantic, which refuses
it; the SDK then drops the line, so the client waits forever for an answer. Here such a
line is re-encoded with each lone surrogate replaced by U+FFFD (what a UTF-8 decoder
shows for the half character), so the request is answered. Other lines pass untouched.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

# A \uD800–\uDFFF escape: the only lines that may need repair (a cheap test first).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace(item) for item in value]
    if isinstance(value, dict):
        return {_replace(key): _replace(item) for key, item in value.items()}
    return value


def repair_line(line: str) -> str:
    """`line` with lone surrogates in its JSON strings replaced by U+FFFD; `line` itself
    when it has none or is not JSON Python can read (the SDK reports those)."""
    if _SURROGATE_ESCAPE.search(line) is None:
        return line
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return line
    try:
        repaired = json.dumps(_replace(message))  # ASCII: every character escaped
    except RecursionError:
        return line
    return repaired + "\n" if line.endswith("\n") else repaired


class RepairedLines:
    """A text stream whose `readline` gives repaired lines (all anyio.wrap_file reads)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def readline(self) -> str:
        return repair_line(self._stream.readline())


@contextmanager
def repaired_stdin() -> Iterator[IO[str]]:
    """The wire, read from a private copy of fd 0 while fd 0 points at the null device,
    as the SDK does for its own stdin (a child that reads stdin must not eat requests);
    fd 0 is the wire again afterwards."""
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    wire = open(private, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    try:
        yield cast(IO[str], RepairedLines(wire))  # the SDK only iterates over lines
    finally:
        os.dup2(private, 0)
        os.close(private)


class SignalledLines:
    """A text stream whose first `flush` (the first answer, to `initialize`, is on the
    pipe) calls `on_first_flush`, from the thread that flushed."""

    def __init__(self, stream: IO[str], on_first_flush: Callable[[], None]) -> None:
        self._stream = stream
        self._on_first_flush: Callable[[], None] | None = on_first_flush

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def flush(self) -> None:
        callback, self._on_first_flush = self._on_first_flush, None
        try:
            self._stream.flush()
        finally:
            if callback is not None:
                callback()


@contextmanager
def signalled_stdout(on_first_flush: Callable[[], None]) -> Iterator[IO[str]]:
    """The wire, written to a private copy of fd 1 while fd 1 points at stderr, as the
    SDK does for its own stdout (a stray print must not land between two answers); fd 1
    is the wire again afterwards."""
    private = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(2, 1)
    wire = open(private, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    try:
        yield cast(IO[str], SignalledLines(wire, on_first_flush))  # the SDK writes, flushes
    finally:
        try:
            wire.flush()
        except OSError:
            pass  # the client is gone
        os.dup2(private, 1)
        os.close(private)

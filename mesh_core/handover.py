"""Handing text to whoever reads a stream, and knowing whether it arrived.

A successful write to a pipe only means the bytes sit in the kernel's buffer: a reader
such as `head -n 1` may exit without ever reading them. So on a pipe the text counts as
handed over only once the reader has drained it (Linux: `FIONREAD` on the write end
reaches 0); a reader that closes first (poll reports POLLERR/POLLHUP, or the write fails
with EPIPE) did not get it. A terminal, a regular file or a socket counts as handed over
on a successful write and flush. Where the pipe's fill level cannot be read (not Linux),
the write counts, as before. The caller marks a message read only on `True`
(docs/contract.md §4.12). This module writes only to the stream it is given.
"""

from __future__ import annotations

import os
import select
import stat
import struct
import sys
import time
from collections.abc import Callable
from typing import TextIO

# The wait for a reader: short at first (a reader that keeps up), then at most this.
MAX_DRAIN_SLEEP = 0.05


def hand_over(
    stream: TextIO,
    text: str,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Write `text` to `stream` and return whether the reader has it (see the module
    docstring). Waits while a pipe's reader is slow; `should_stop` (checked while
    waiting) gives up early, as not handed over."""
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ConnectionResetError):
        return False
    try:
        fd = stream.fileno()
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):  # not backed by a file descriptor
        return True
    if not is_pipe:
        return True
    return wait_drained(fd, should_stop)


def reader_gone(stream: TextIO) -> bool:
    """True once the reader of this pipe has closed it (checked while idle, so that a
    follower notices `| head -n 1` ending without waiting for the next message)."""
    try:
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))


def wait_drained(fd: int, should_stop: Callable[[], bool] | None = None) -> bool:
    """Block until the pipe written through `fd` holds no unread bytes (True) or its
    reader has gone with bytes still unread (False)."""
    sleep = 0.001
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while True:
        left = unread_bytes(fd)
        if left is None or left == 0:
            return True
        if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0)):
            return False
        if should_stop is not None and should_stop():
            return False
        time.sleep(sleep)
        sleep = min(MAX_DRAIN_SLEEP, sleep * 2)


def unread_bytes(fd: int) -> int | None:
    """Bytes written to this pipe that no reader has taken yet; None where the system
    cannot say (the write end answers FIONREAD on Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import fcntl
    import termios

    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return None
    return int(struct.unpack("i", raw)[0])

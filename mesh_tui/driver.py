"""Terminal output that cannot hang the app when the terminal goes away.

Textual's writer thread dies on the first failed write (EIO once the terminal is closed,
as `tmux kill-session` does); its queue then fills, and the next write blocks the event
loop forever in a lock wait, so SIGHUP and SIGTERM were never handled. This writer keeps
draining its queue after a failed write and drops what can no longer be shown.
"""

from __future__ import annotations

from textual.drivers import _writer_thread

__all__ = ["SafeWriterThread", "install"]


class SafeWriterThread(_writer_thread.WriterThread):
    """A WriterThread that survives a dead terminal."""

    terminal_gone = False

    def write(self, text: str) -> None:
        if not self.terminal_gone:
            super().write(text)

    def run(self) -> None:
        while True:
            text = self._queue.get()
            if text is None:
                break
            if self.terminal_gone:
                continue
            try:
                self._file.write(text)
                if self._queue.qsize() == 0:
                    self._file.flush()
            except (OSError, ValueError):
                self.terminal_gone = True  # keep draining: writers never block
        try:
            if not self.terminal_gone:
                self._file.flush()
        except (OSError, ValueError):
            self.terminal_gone = True


def install() -> None:
    """Make Textual's Linux driver use SafeWriterThread (it looks the class up by name
    when the app starts)."""
    try:
        from textual.drivers import linux_driver
    except ImportError:  # Windows: another driver, another writer
        return
    linux_driver.WriterThread = SafeWriterThread  # type: ignore[attr-defined]

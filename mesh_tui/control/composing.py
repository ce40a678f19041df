"""Writing and sending: the composer's target, drafts per conversation, the send
worker, copying, and handing a text to $PAGER / $EDITOR."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from rich.text import Text
from textual import on, work

from mesh_core.errors import MeshError
from mesh_core.models import Message
from mesh_core.text import safe_line, safe_text
from mesh_tui.control.reading import ReadingPart
from mesh_tui.messages import SendFailed, SendSucceeded
from mesh_tui.target import ReplyTo, SendTo, Target
from mesh_tui.widgets.composer import Composer
from mesh_tui.widgets.conversation import Conversation
from mesh_tui.widgets.roster import Roster
from mesh_tui.widgets.threads import ThreadList


class ComposingPart(ReadingPart):
    """The composer, its drafts and its sends."""

    def action_new_message(self) -> None:
        key = self.query_one(Roster).selected_key
        if key is None:
            self.notify("Select an agent in the roster first.", markup=False)
            return
        self._keep_draft()
        self._target = SendTo(key)
        name = self._agent_name(key)
        self.query_one(Composer).open(
            self._new_label(name), f"to:{name}", self._draft_for(f"to:{name}")
        )
        self.call_after_refresh(self._fit_toasts)  # the toasts end above it

    @staticmethod
    def _new_label(name: str) -> Text:
        label = Text("New message to ", style="bright_black")
        label.append(safe_line(name, 40), style="bold")
        return label

    def action_reply(self) -> None:
        thread_id = self.open_thread
        summary = (
            next((t for t in self.snapshot.threads if t.thread_id == thread_id), None)
            if self.snapshot
            else None
        )
        if summary is None:
            self.notify("Select a thread first.", markup=False)
            return
        self._keep_draft()
        self._target = ReplyTo(summary.last_message_id)
        key = f"thread:{summary.thread_id}"
        self.query_one(Composer).open(
            self._reply_label(summary.thread_id), key, self._draft_for(key)
        )
        self.call_after_refresh(self._fit_toasts)  # the toasts end above it

    def _reply_label(self, thread_id: int) -> Text:
        """Who a reply in `thread_id` goes to, as the mesh decides it: the sender of its
        newest message, or that message's recipient if the person sent it."""
        label = Text(f"Reply in thread #{thread_id} to ", style="bright_black")
        last = (
            self._open_messages[-1]
            if self._open_messages and self.open_thread == thread_id
            else None
        )
        if last is None:
            summary = (
                next((t for t in self.snapshot.threads if t.thread_id == thread_id), None)
                if self.snapshot
                else None
            )
            names = summary.participants if summary else ()
            label.append(" / ".join(safe_line(p, 20) for p in names) or "?", style="bold")
            return label
        mine = last.sender_session_id == self.me
        name = (
            (last.recipient_name or last.recipient_session_id[:8])
            if mine
            else (last.sender_name or last.sender_session_id[:8])
        )
        label.append(safe_line(name, 40), style="bold")
        return label

    def _draft_for(self, key: str) -> str:
        return self.drafts.get(key)

    def _keep_draft(self) -> None:
        """Remember the draft on screen under its conversation."""
        composer = self.query_one(Composer)
        if composer.key is not None and not composer.sending:
            self.drafts.set(composer.key, composer.draft)

    @on(Composer.Leave)
    def _composer_left(self) -> None:
        composer = self.query_one(Composer)
        self._keep_draft()
        try:
            self.drafts.save()
        except OSError as exc:
            self.notify(f"Could not save drafts: {exc.strerror}", severity="error", markup=False)
        composer.close()
        self.query_one(ThreadList if self.open_thread else Roster).focus()

    @on(Composer.Send)
    def _composer_send(self, event: Composer.Send) -> None:
        composer = self.query_one(Composer)
        if self._target is None or self.me is None:
            composer.refused("Nobody to send to: pick an agent (n) or a thread (r).")
            return
        self.send_draft(self.me, self._target, composer.key or "", event.text, event.priority)

    @work(thread=True, exit_on_error=False, group="send")
    def send_draft(self, me: str, target: Target, key: str, text: str, priority: str) -> None:
        """Send off the event loop; the rule's refusal comes back as SendFailed."""
        try:
            if isinstance(target, ReplyTo):
                message = self.mesh.reply(me, target.message_id, text, priority=priority)
            else:
                message = self.mesh.send(me, target.session_id, text, priority=priority)
        except (MeshError, sqlite3.Error) as exc:
            self.post_message(SendFailed(str(exc)))
            return
        self.post_message(SendSucceeded(message, key))

    def on_send_failed(self, event: SendFailed) -> None:
        if self._panes_gone():
            return
        self.query_one(Composer).refused(event.error)

    def on_send_succeeded(self, event: SendSucceeded) -> None:
        message: Message = event.message
        if self._panes_gone():
            return
        composer = self.query_one(Composer)
        self.drafts.set(event.key, "")
        composer.sent()
        self.notify(
            f"Sent to {safe_line(message.recipient_name or message.recipient_session_id, 40)}",
            markup=False,
        )
        for warning in message.warnings:
            # Warnings name the recipient as the database has it: untrusted text.
            self.notify(safe_text(warning), severity="warning", markup=False)
        # the next send from here is a reply in the thread the message joined
        self._target = ReplyTo(message.message_id)
        key = f"thread:{message.thread_id}"
        label = Text(f"Reply in thread #{message.thread_id} to ", style="bright_black")
        label.append(
            safe_line(message.recipient_name or message.recipient_session_id[:8], 40),
            style="bold",
        )
        composer.retarget(label, key, self._draft_for(key))
        try:
            self.drafts.save()
        except OSError:
            pass
        self.open_thread = message.thread_id
        self._select_thread = message.thread_id
        self.request_refresh()

    def on_conversation_copy(self, event: Conversation.Copy) -> None:
        """OSC 52: the terminal puts it on the clipboard (tmux needs set-clipboard on)."""
        self.copy_to_clipboard(event.text)
        self.notify(f"Copied {len(event.text):,} characters", markup=False)

    def on_conversation_open_pager(self, event: Conversation.OpenPager) -> None:
        self._run_outside(os.environ.get("PAGER") or "less", safe_text(event.text), edit=False)

    @on(Composer.Edit)
    def _edit_draft(self) -> None:
        composer = self.query_one(Composer)
        edited = self._run_outside(os.environ.get("EDITOR") or "vi", composer.draft, edit=True)
        if edited is not None:
            composer.set_draft(edited)

    def _run_outside(self, command: str, text: str, *, edit: bool) -> str | None:
        """Hand the terminal to `command` on a private temporary copy of `text`; when
        editing, return the file's new text."""
        import shlex
        import subprocess

        fd, name = tempfile.mkstemp(prefix="mesh-tui-", suffix=".txt")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            try:
                with self.suspend():
                    subprocess.run([*shlex.split(command), str(path)], check=False)
            except Exception as exc:  # noqa: BLE001 - no terminal to suspend, or no such program
                self.notify(f"Could not run {command}: {exc}", severity="error", markup=False)
                return None
            return path.read_text(encoding="utf-8") if edit else None
        finally:
            path.unlink(missing_ok=True)

    def save_drafts(self) -> Path | None:
        """Write the drafts (the one in the composer included) to their file."""
        if self.query(Composer):
            self._keep_draft()
        return self.drafts.save()

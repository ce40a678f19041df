"""Getting the person's attention: toasts (few, newest first, logged), the terminal
title, the bell and desktop notifications."""

from __future__ import annotations

from textual.notifications import Notification, Notify, SeverityLevel
from textual.widgets._toast import Toast, ToastRack

from mesh_core.models import Message
from mesh_core.text import safe_line
from mesh_tui.control.view import ViewPart
from mesh_tui.messages import Notice
from mesh_tui.notices import (
    LOG_LIMIT,
    MAX_TOASTS,
    LoggedNotice,
    NotificationLog,
    humanize_times,
    notify_send,
    osc_notification,
    osc_title,
    terminal_title,
)
from mesh_tui.widgets.composer import Composer


class NoticingPart(ViewPart):
    """Toasts, the notification log, the title and alerts."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast: times made local and relative, and kept in the log (ctrl+n)."""
        now = self.mesh.clock.now()
        message = humanize_times(message, now)
        self.notice_log.append(LoggedNotice(now, title, message, severity))
        del self.notice_log[:-LOG_LIMIT]
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _on_notify(self, event: Notify) -> None:
        """At most MAX_TOASTS on screen, the newest first (the rack sits top right, away
        from the composer)."""
        self._notifications.add(event.notification)
        shown = list(self._notifications)
        for old in shown[:-MAX_TOASTS]:
            self._unnotify(old, refresh=False)
        self._refresh_notifications()
        self.call_after_refresh(self._newest_toast_first, event.notification)

    def _newest_toast_first(self, notification: Notification) -> None:
        for rack in self.screen.query(ToastRack):
            holders = list(rack.children)
            newest = [h for h in holders if h.id == f"--textual-toast-{notification.identity}"]
            if newest and holders and holders[0] is not newest[0]:
                rack.move_child(newest[0], before=0)
        self.call_after_refresh(self._fit_toasts)

    def _refresh_notifications(self) -> None:
        """While the screen is too small its notice fills it: toasts wait in the log
        (ctrl+n) and come back, if not expired, once the terminal is larger."""
        if self._too_small():
            for rack in self.screen.query(ToastRack):
                rack.display = False  # after Textual's own `show`, which sets it
            return
        super()._refresh_notifications()
        self.call_after_refresh(self._fit_toasts)

    def _too_small(self) -> bool:
        base = self.screen_stack[0] if self.screen_stack else None
        return base is not None and base.has_class("-too-small")

    def _fit_toasts(self) -> None:
        """The toasts (newest first) end above the composer: one that does not fit whole
        is hidden until those above it go. Every one stays in the log."""
        if self._too_small():
            self._refresh_notifications()
            return
        base = self.screen_stack[0] if self.screen_stack else None
        found = self.query(Composer)
        composer = found.first() if found else None
        limit = None
        if base is self.screen and composer is not None and composer.region.height:
            limit = composer.region.y
        unknown = False
        current = {h.id for rack in self.screen.query(ToastRack) for h in rack.children}
        for gone in [k for k in self._toast_heights if k not in current]:
            del self._toast_heights[gone]
        for rack in self.screen.query(ToastRack):
            bottom = rack.styles.margin.top  # docked at the top of the screen
            for holder in rack.children:
                toast = holder.query(Toast)
                if not toast:
                    continue
                if toast.first().outer_size.height:  # laid out (a hidden one keeps its size)
                    self._toast_heights[holder.id or ""] = (
                        toast.first().styles.margin.top + toast.first().outer_size.height
                    )
                height = self._toast_heights.get(holder.id or "", 0)
                unknown = unknown or not height
                fits = limit is None or bottom + height <= limit
                if holder.display != fits:
                    holder.display = fits
                bottom += height if fits else 0
        if unknown:  # a toast not laid out yet: fit again once it is
            self.call_after_refresh(self._fit_toasts)

    def action_notification_log(self) -> None:
        self.push_screen(NotificationLog(list(self.notice_log), self.mesh.clock.now()))

    def _update_title(self) -> None:
        """The terminal's title counts the messages to the person not yet opened."""
        unseen = sum(len(ids) for ids in self.unseen.values())
        title = terminal_title(unseen)
        if title == self.window_title:
            return
        self.window_title = title
        self._write_terminal(osc_title(title))

    def _write_terminal(self, sequence: str) -> None:
        if self.live and self._driver is not None and not self.is_headless:
            self._driver.write(sequence)

    def _alert(self, message: Message) -> None:
        """A high or urgent message to the person: the bell, and a desktop
        notification if asked for."""
        self.bell()
        sender = safe_line(message.sender_name or message.sender_session_id[:8], 30)
        title = f"mesh: {message.priority} from {sender}"
        body = safe_line(message.content, 120)
        if self.desktop_notify == "osc":
            self._write_terminal(osc_notification(title, body))
        elif self.desktop_notify == "notify-send":
            notify_send(title, body)

    def on_notice(self, event: Notice) -> None:
        self.notify(event.text, severity=event.severity, markup=False)

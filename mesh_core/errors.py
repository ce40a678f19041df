"""One exception class per rule. Each message says what happened and what to do next.

`exit_code` is what the `mesh` command exits with: 1 for a refusal by a mesh rule or a
missing thing, 3 when the database itself cannot be used.
"""

from __future__ import annotations

from collections.abc import Sequence


class MeshError(Exception):
    """Base of every refusal."""

    exit_code = 1


class UnknownRecipient(MeshError):
    def __init__(self, target: str, known: Sequence[str] = ()) -> None:
        self.target = target
        self.known = list(known)
        if self.known:
            shown = ", ".join(self.known[:20]) + (" …" if len(self.known) > 20 else "")
            hint = f"workspaces on the mesh: {shown}"
        else:
            hint = "no workspace is registered yet; start an agent with the mesh MCP server"
        super().__init__(f"unknown recipient {target!r}: {hint} (see `mesh agents --status all`)")


class NoBroadcastRecipients(MeshError):
    def __init__(self) -> None:
        super().__init__("broadcast `*` reached nobody: no other session is active right now")


class SelfMessage(MeshError):
    def __init__(self, name: str) -> None:
        super().__init__(f"cannot send a message to yourself ({name!r}); pick another workspace")


class EmptyContent(MeshError):
    def __init__(self) -> None:
        super().__init__("message is empty: write some text to send")


class ContentTooLarge(MeshError):
    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"message is {size:,} bytes, over the {limit:,}-byte limit by {size - limit:,}: "
            "shorten it, or put the details in a file and send its path"
        )


class InvalidContent(MeshError):
    def __init__(self, why: str) -> None:
        super().__init__(f"message cannot be sent: {why}")


class InvalidPriority(MeshError):
    def __init__(self, value: object) -> None:
        super().__init__(f"unknown priority {value!r}: use one of low, normal, high, urgent")


class RateLimited(MeshError):
    def __init__(self, recipient: str, limit: int, window: float, retry_after: float) -> None:
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"rate limit: {limit} messages to {recipient!r} in {window:g} s already "
            "(from any session of your workspace); "
            f"try again in {max(1, round(self.retry_after + 0.499))} s"
        )


class MessageNotFound(MeshError):
    def __init__(self, message_id: object) -> None:
        self.message_id = message_id
        super().__init__(
            f"message not found: no message with id {message_id!r} "
            "(it may have been cleaned up; see `mesh inbox` or the TUI for current ids)"
        )


class InvalidMessageId(MeshError):
    def __init__(self, value: object) -> None:
        super().__init__(f"invalid message id {value!r}: a message id is a positive integer")


class SessionNotFound(MeshError):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"session {session_id!r} is not registered on this mesh: register first "
            "(the CLI does it with --from NAME)"
        )


class CannotForget(MeshError):
    """Only a stopped session with no mail waiting for it can be forgotten."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"cannot forget {name!r}: {why}")


class InvalidName(MeshError):
    def __init__(self, name: object, why: str) -> None:
        super().__init__(f"invalid workspace name {name!r}: {why}")


class InvalidArgument(MeshError):
    """A value outside what a call accepts (status filter, timeout, ...)."""


class WaitTimedOut(MeshError):
    def __init__(self, message_id: int, timeout: float) -> None:
        super().__init__(
            f"no reply to message {message_id} within {timeout:g} s; "
            f"it may still come: check later with `mesh show {message_id}`"
        )


class DatabaseBusy(MeshError):
    """Another process held the write lock past the retry budget: the database is fine,
    so this is exit 1 ("try again"), not 3 ("unusable")."""

    def __init__(self, path: object, holder_pid: int | None = None) -> None:
        self.path = str(path)
        self.holder_pid = holder_pid
        who = f" (pid {holder_pid})" if holder_pid is not None else ""
        super().__init__(
            f"database is busy: another process{who} holds the write lock on {self.path}; try again"
        )


class DatabaseUnusable(MeshError):
    """The database file cannot be used; it was left as it was."""

    exit_code = 3

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot use database {self.path}: {reason}")


class NotAMeshDatabase(DatabaseUnusable):
    pass


class CorruptDatabase(DatabaseUnusable):
    pass


class NewerSchema(DatabaseUnusable):
    pass


class DatabasePermission(DatabaseUnusable):
    pass

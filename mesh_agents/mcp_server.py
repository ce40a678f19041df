"""`mesh mcp`: the mesh's tools for an agent, over MCP on stdio (docs/contract.md §5.2).

Thin on purpose: every rule lives in mesh_core; this file registers the session, serves
the tools of `mcp_tools` (which shape their results), pushes and takes acks. Three things
shape it:

- **Register first.** The session is written to the database before the `mcp` SDK is
  even imported (that import is the slowest part of start-up), so others see this one the
  moment its process starts, long before the client's first request.
- **Delivery.** Every tool result ends with a line when unread mail waits (counted with
  `peek_inbox`, marking nothing). A client that can take pushed messages — it declares the
  experimental `claude/channel` capability, or the server was started with `--channel`
  for a Claude Code session launched with channels on — gets each message as a
  `notifications/claude/channel` notification the moment it lands; only for such a
  client does the participant loop take mail off the inbox, so a client that cannot take
  pushes never has mail marked read behind its back. A Codex client is instead woken
  when idle: `mesh_agents.wake` queues the unread notice with `codex queue` (§5.2.6).
- **Framing.** Another agent's text reaches the model between begin/end markers that the
  text itself cannot forge (mesh_core.delivery, shared with the hooks).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mesh_core.delivery import (
    defang,
    frame_messages,
)
from mesh_core.host_sessions import BOUND_KEY, HOST_SESSION_KEY
from mesh_core.lifecycle import host_metadata
from mesh_core.liveness import host_process
from mesh_core.mesh import Mesh
from mesh_core.models import Agent, Message
from mesh_core.participant import Participant
from mesh_core.rules import CLIENT_HOOK, CLIENT_MCP
from mesh_core.text import safe_line

from .jsonrpc_stdin import repaired_stdin, signalled_stdout
from .mcp_tools import INSTRUCTIONS, TOOL_DESCRIPTIONS, MeshTools, bind_annotations
from .wake import CodexWaker, thread_id_of

if TYPE_CHECKING:
    import asyncio

    from mcp.server.mcpserver import MCPServer
    from mcp.server.session import ServerSession

log = logging.getLogger(__name__)

CLIENT = CLIENT_MCP
SERVER_NAME = "agent-mesh"
CHANNEL_CAPABILITY = "claude/channel"
CHANNEL_METHOD = "notifications/claude/channel"
PUSH_TIMEOUT = 10.0
# The participant loop (its watch's start, its first round) starts with the client's
# first message after `initialize`, or this long after serving began, whichever is first.
LOOP_START_DELAY = 1.0
PUSH_BATCH = 20  # messages offered per change; the rest on the next one
ACK_METHOD = "agent-mesh/ack"
TOOL_METHODS = ("tools/list", "tools/call")  # what waits for the tools to be added


class MeshMCP(MeshTools):
    """One agent session on the mesh, served to one MCP client over stdio."""

    def __init__(
        self,
        mesh: Mesh,
        name: str | None = None,
        *,
        cwd: str | None = None,
        channel: bool = False,
        wake: bool = True,
    ) -> None:
        self.mesh = mesh
        self.channel_opt_in = channel
        # One host session is one mesh session: if the host's hooks already registered
        # the host process's only session, this server takes it over. A host process with
        # several (Codex's daemon runs one server per thread) is sorted out once the
        # client names its thread (`_bind_host_session`).
        host_pid = self.host_pid = host_process()
        running = mesh.host_sessions(None, host_pid)
        shared = running[0] if len(running) == 1 else None
        if shared is not None and shared.metadata.get("client") != CLIENT_HOOK:
            shared = None  # another server of the same parent (a test, a script): its own
        # The one dict the participant registers with, so a rejoin keeps the thread id.
        self._metadata = host_metadata(
            host_pid, shared.metadata.get(HOST_SESSION_KEY) if shared is not None else None
        )
        self._host_session_id: str | None = self._metadata.get(HOST_SESSION_KEY)
        self._shared_at_init = shared
        self.participant = Participant(
            mesh,
            name if name is not None or shared is None else shared.agent_name,
            "agent",
            client=CLIENT,
            cwd=cwd,
            session_id=shared.session_id if shared is not None else None,
            metadata=self._metadata,
            on_change=self._on_change,
            take_inbox=False,  # never: a push marks read only when the client acks it
        )
        self._session: ServerSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = threading.Event()
        self._push_enabled = False
        self._pushed: set[int] = set()  # offered in this session, not acked yet
        self._sdk_import: threading.Thread | None = None
        self._app: MCPServer | None = None
        self._tools_added = False
        self._initialize_seen = False
        self._first_answer: asyncio.Event | None = None  # set once that answer is on the wire
        # Codex only: queue a wake notice into the idle session (mesh_agents.wake).
        self.waker = CodexWaker(mesh.path, lambda: self.session_id, host_pid, enabled=wake)

    # -- lifecycle --

    def start(self) -> Agent:
        """Register now: the session is on the mesh before anything is served. SIGTERM
        is handled from this moment, not after the slow SDK import, so a client that
        gives up during start-up still leaves the session marked stopped."""
        self._install_signal_handlers()
        # The loop (its watch's start, its first round) waits until `initialize` is
        # answered (LOOP_START_DELAY): until then nothing can be pushed, and its work
        # would share the interpreter with the import below and with that answer.
        agent = self.participant.start(loop=False)
        if self._shared_at_init is None:
            self._adopt_late_hook_session()
        # The SDK's import starts the moment the session is written, on its own thread,
        # so none of our remaining start-up runs before it begins.
        self._sdk_import = threading.Thread(
            target=_import_sdk, name="mesh-mcp-sdk-import", daemon=True
        )
        self._sdk_import.start()
        return agent

    def _adopt_late_hook_session(self) -> None:
        """A host hook (Claude Code's SessionStart) that registered its session after
        __init__ looked and before this server registered left two live sessions for one
        host session, splitting its mail. If the host process runs just those two (ours
        and one hook session), take the hook's over, as __init__ would have."""
        running = self.mesh.host_sessions(None, self.host_pid)
        hooks = [a for a in running if a.metadata.get("client") == CLIENT_HOOK]
        ours = [a for a in running if a.metadata.get("client") != CLIENT_HOOK]
        if len(hooks) != 1 or [a.session_id for a in ours] != [self.session_id]:
            return
        host_session_id = hooks[0].metadata.get(HOST_SESSION_KEY)
        if not isinstance(host_session_id, str):
            return
        self.mesh.bind_host_session(self.session_id, self.host_pid, host_session_id, bound=False)
        self._metadata[HOST_SESSION_KEY] = host_session_id  # a rejoin keeps it
        self._host_session_id = host_session_id

    def _install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP: mark the session stopped, then leave at once.
        Raising SystemExit instead would wait for the SDK's stdin reader thread, which
        blocks while the client keeps stdin open (Copilot sends SIGKILL 1 ms later)."""
        import os
        import signal

        def handle(signum: int, frame: object) -> None:
            self._closing.set()
            self.participant.take_inbox = False
            try:
                self.participant.stop()
            finally:
                os._exit(128 + signum)

        for name in ("SIGTERM", "SIGINT", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), handle)

    @property
    def session_id(self) -> str:
        return self.participant.session_id

    def serve_stdio(self) -> None:
        """Serve until stdin closes; then (or on SIGTERM) the session is marked stopped."""
        if self._sdk_import is not None:
            self._sdk_import.join()  # a failed import fails again below, with its error
        import anyio

        try:
            anyio.run(self._serve_stdio)
        finally:
            self.participant.take_inbox = False  # no client left to hand mail to
            self._closing.set()
            self.waker.close()
            self.participant.stop()

    async def _serve_stdio(self) -> None:
        import asyncio

        import anyio
        from mcp.server.stdio import stdio_server

        app = self._app = self._new_server()
        # MCPServer.run_stdio_async cannot declare experimental capabilities; the SDK's own
        # in-memory client reaches the low-level server the same way.
        lowlevel = app._lowlevel_server
        experimental: dict[str, dict[str, Any]] = {CHANNEL_CAPABILITY: {}}
        options = lowlevel.create_initialization_options(experimental_capabilities=experimental)
        loop = self._loop = asyncio.get_running_loop()
        self._first_answer = asyncio.Event()

        def answered() -> None:  # the writer's thread: the answer to `initialize` is out
            log.debug("first answer written")
            loop.call_soon_threadsafe(self._answer_out)

        # Our stdin: the SDK drops a line holding a lone surrogate without an answer. Our
        # stdout: it says when the first answer is out, so the tools are built after it.
        with repaired_stdin() as wire_in, signalled_stdout(answered) as wire_out:
            async with (
                stdio_server(stdin=anyio.wrap_file(wire_in), stdout=anyio.wrap_file(wire_out)) as (
                    read_stream,
                    write_stream,
                ),
                anyio.create_task_group() as tasks,
            ):
                tasks.start_soon(self._start_loop_later)
                await lowlevel.run(read_stream, write_stream, options)
                tasks.cancel_scope.cancel()

    async def _start_loop_later(self) -> None:
        """The loop's start would share the interpreter with answering `initialize`."""
        import anyio

        await anyio.sleep(LOOP_START_DELAY)
        self._add_tools()  # pushes answered by an ack need its handler
        self.participant.start_loop()

    def _add_ack_handler(self, lowlevel: Any) -> None:
        import mcp_types
        from pydantic import ConfigDict

        class AckParams(mcp_types.RequestParams):
            model_config = ConfigDict(extra="allow")  # `message_ids`, as the client sends it

        lowlevel.add_request_handler(ACK_METHOD, AckParams, self._ack)

    # -- pushed delivery --

    async def _observe(self, ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        """Middleware: learn the client's session and capabilities; once it declared it
        takes pushed messages (or `--channel` said so), offer it the waiting mail. A tools
        request waits for the tools (`_tools_ready`); the participant loop starts once
        they are added, never before the answer to `initialize` is out."""
        self.waker.observe(ctx.method, ctx.params)
        if ctx.method == "initialize":
            self._initialize_seen = True
        elif ctx.method in TOOL_METHODS:
            await self._tools_ready()
        if ctx.method == "tools/call":
            self._bind_host_session(thread_id_of(ctx.params))
        result = await call_next(ctx)
        if ctx.method != "initialize" and self._tools_added:
            self.participant.start_loop()  # once; pushes need it
        session = ctx.session
        if ctx.method == "notifications/initialized" or session.client_capabilities is not None:
            self._session = session
            caps = session.client_capabilities
            declared = bool(caps and caps.experimental and CHANNEL_CAPABILITY in caps.experimental)
            if (declared or self.channel_opt_in) and not self._push_enabled:
                self._push_enabled = True
                self.participant.poll_now()
        return result

    def _bind_host_session(self, thread_id: str | None) -> None:
        """The client named its host session (Codex: the thread id in `_meta`): record it
        so that session's hooks find this one, and take over what they registered."""
        if thread_id is None or thread_id == self._host_session_id or self._closing.is_set():
            return
        self._host_session_id = self._metadata[HOST_SESSION_KEY] = thread_id
        self._metadata[BOUND_KEY] = True
        taken = self.mesh.bind_host_session(self.session_id, self.host_pid, thread_id)
        if taken:
            self.participant.poll_now()  # their mail is ours now

    def _on_change(self) -> None:
        log.debug("change seen")
        self.waker.notify()
        self._offer_pushes()

    def _offer_pushes(self) -> None:
        """Participant callback (its thread): each unread message not offered yet goes
        out as a channel notification. Nothing is marked read here: the client answers
        `agent-mesh/ack` once its host took the text; until then the message stays in
        the inbox for the notice, the hooks and check_inbox (so a declined or lost push
        costs a second copy, never the message)."""
        if not self._push_enabled or self._closing.is_set():
            return
        for message in self.mesh.peek_inbox(self.session_id, limit=PUSH_BATCH):
            if message.message_id in self._pushed:
                continue
            self._push(message)
            self._pushed.add(message.message_id)

    def _push(self, message: Message) -> None:
        import asyncio

        from mcp_types import Notification

        session, loop = self._session, self._loop
        if session is None or loop is None or self._closing.is_set():
            return
        params = {
            "content": frame_messages(self.mesh, [message]),
            "meta": {
                "source": "agent-mesh",
                "message_id": str(message.message_id),
                "thread_id": str(message.thread_id),
                "sender": defang(safe_line(message.sender_name or message.sender_session_id, 80)),
                "sender_session_id": message.sender_session_id,
                "priority": message.priority,
            },
        }
        notification = Notification[dict[str, Any], str](method=CHANNEL_METHOD, params=params)
        log.debug("pushing message %d", message.message_id)
        future = asyncio.run_coroutine_threadsafe(
            session.send_notification(notification),  # type: ignore[arg-type]
            loop,
        )
        future.result(timeout=PUSH_TIMEOUT)

    async def _ack(self, ctx: Any, params: Any) -> dict[str, Any]:
        """`agent-mesh/ack {message_ids}`: the client's host accepted these pushes; only
        now are they marked read. Needs the core's `Mesh.mark_read(session_id, ids)`;
        without it they stay unread (delivered again by the next route, never lost)."""
        extra = getattr(params, "model_extra", None) or {}
        raw = extra.get("message_ids")
        ids = (
            [i for i in raw if isinstance(i, int) and not isinstance(i, bool)]
            if isinstance(raw, list)
            else []
        )
        mark_read = getattr(self.mesh, "mark_read", None)
        marked: list[int] = []
        if ids and callable(mark_read):
            marked = list(mark_read(self.session_id, ids))
        self._pushed.difference_update(ids)
        return {"marked": marked, "unread": [i for i in ids if i not in marked]}

    # -- results --

    def build(self) -> MCPServer:
        """The MCPServer with the six tools (the methods named in TOOL_DESCRIPTIONS)."""
        app = self._app = self._new_server()
        self._add_tools()
        return app

    def _new_server(self) -> MCPServer:
        """The MCPServer without its tools: all that answering `initialize` needs."""
        from mcp.server.mcpserver import MCPServer

        with _without_rich():
            app: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
        app.middleware.append(self._observe)
        return app

    def _answer_out(self) -> None:
        """The loop's thread, once the first answer (to `initialize`) is on the wire."""
        if self._first_answer is not None:
            self._first_answer.set()
        self._add_tools()

    async def _tools_ready(self) -> None:
        """A client that sent its request without waiting for the answer to `initialize`
        (it may pipeline them): that answer still goes out before the tools are built."""
        if not self._tools_added and self._initialize_seen and self._first_answer is not None:
            await self._first_answer.wait()
        self._add_tools()

    def _add_tools(self) -> None:
        """Add the six tools (and the ack's handler) to the server, once. Serving calls
        it when the answer to `initialize` is on the wire (a client reads it and only
        then asks for the list), or for a tools request that came first: building their
        schemas is the SDK's pydantic work, which `initialize` does not need."""
        app = self._app
        if app is None or self._tools_added:
            return
        self._tools_added = True
        bind_annotations()
        for name, description in TOOL_DESCRIPTIONS.items():
            app.add_tool(getattr(self, name), name=name, description=description)
        # An ack answers a push, and pushes wait for the participant loop, which starts
        # after this: its handler (one more pydantic model) waits too.
        self._add_ack_handler(app._lowlevel_server)
        log.debug("tools added")


@contextmanager
def _without_rich() -> Iterator[None]:
    """Build the server as the SDK does without its `rich` extra, which we do not ask for:
    its log set-up imports rich when it finds it (our CLI needs it), a cost of start-up
    for a log handler that only decorates stderr. It falls back to logging's own handler."""
    names = ("rich", "rich.console", "rich.logging")
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment]  # None: `import` raises ImportError
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _import_sdk() -> None:
    """Import what serving needs (the SDK, anyio, pydantic); errors surface on use. The
    debug log's two lines time the import (tests/bench/startup.py splits the start-up
    with them)."""
    log.debug("MCP SDK import started")
    try:
        import anyio  # noqa: F401
        import mcp.server.mcpserver
        import mcp.server.stdio  # noqa: F401
        import pydantic  # noqa: F401
    except Exception:
        log.debug("importing the MCP SDK in the background failed", exc_info=True)
    log.debug("MCP SDK imported")


def serve(
    mesh: Mesh,
    name: str | None = None,
    *,
    channel: bool = False,
    cwd: str | None = None,
    wake: bool = True,
) -> int:
    """`mesh mcp`: register, then serve over stdio until the client goes away."""
    server = MeshMCP(mesh, name, cwd=cwd, channel=channel, wake=wake)
    server.start()
    server.serve_stdio()
    return 0

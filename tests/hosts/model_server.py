"""A scripted model server on 127.0.0.1 for the real-host suite.

It speaks the four wire formats the agent CLIs use — Anthropic Messages (Claude Code),
OpenAI Responses (Codex), Gemini `generateContent` (Gemini CLI) and OpenAI chat
completions (Copilot CLI) — logs every request it gets, and answers from a script: the
n-th step of the script is played when the conversation in the request already holds n
tool results. A request that offers no mesh tool (a title or a classifier request the
host makes on the side) gets a short text answer, so it never consumes a step.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self


@dataclass(frozen=True)
class Step:
    """One model turn: call the mesh tool whose name ends with `tool`, or answer `text`."""

    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    search: bool = False  # a tool-search call the host needs first; not a script step


def call(tool: str, **args: Any) -> Step:
    return Step(tool=tool, args=args)


def say(text: str) -> Step:
    return Step(text=text)


def strings(value: Any) -> Iterator[str]:
    """Every string inside a decoded JSON value, and inside strings that hold JSON
    themselves (a host that passes structured content as a JSON string)."""
    if isinstance(value, str):
        yield value
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and len(stripped) > 1:
            try:
                inner = json.loads(stripped)
            except ValueError:
                return
            yield from strings(inner)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def text_of(value: Any) -> str:
    return "\n".join(strings(value))


@dataclass
class Logged:
    """One request as the server received it."""

    at: float
    method: str
    path: str
    body: Any
    kind: str  # anthropic | responses | gemini | chat | other
    tools: list[str]
    tool_results: int
    step: int | None  # the script step played, None for a side request

    @property
    def text(self) -> str:
        return text_of(self.body)


class ModelServer:
    """Serve `script` on a free port of 127.0.0.1 until `close`; `requests` logs them all.

    `on_step(n)` runs before step n is answered (the test sends mail mid-session there).
    """

    def __init__(
        self,
        script: list[Step],
        log_path: Path | None = None,
        on_step: Callable[[int], None] | None = None,
        tool_marker: str = "send_message",
    ) -> None:
        self.script = script
        self.log_path = log_path
        self.on_step = on_step
        self.tool_marker = tool_marker
        self.requests: list[Logged] = []
        self._lock = threading.Lock()
        self._steps_run: set[int] = set()
        self._ids = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, None)

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "zstd":
                    raw = b"{}"  # not expected; logged as empty
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    raw = gzip.decompress(raw)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                server._handle(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the log says ---------------------------------------------------------------

    @property
    def main_requests(self) -> list[Logged]:
        """Requests that offered the mesh tools (the agent's own conversation)."""
        return [r for r in self.requests if r.step is not None]

    @property
    def model_requests(self) -> list[Logged]:
        return [r for r in self.requests if r.kind != "other"]

    def seen(self, needle: str) -> bool:
        return any(needle in r.text for r in self.model_requests)

    def first_seen(self, needle: str) -> Logged | None:
        return next((r for r in self.model_requests if needle in r.text), None)

    # -- dispatch ------------------------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _handle(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        path = h.path
        kind = _kind(path, body)
        tools = _tool_names(kind, body)
        results = _tool_result_count(kind, body)
        offers_mesh = any(name.endswith(self.tool_marker) for name in tools)
        # Claude Code 2.1.332 names MCP tools without schemas (loaded through its
        # ToolSearch tool), or says the server is "still connecting" and will appear.
        text = text_of(body) if not offers_mesh and "ToolSearch" in tools else ""
        deferred = f"agent-mesh__{self.tool_marker}" in text or (
            "still connecting" in text and "agent-mesh" in text
        )
        pending = not offers_mesh and "WaitForMcpServers" in tools
        step = min(results, len(self.script) - 1) if offers_mesh and self.script else None
        logged = Logged(time.time(), h.command, path, body, kind, tools, results, step)
        with self._lock:
            self.requests.append(logged)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as f:
                    record = {k: v for k, v in logged.__dict__.items()}
                    f.write(json.dumps(record, default=str) + "\n")
            first_time = step is not None and step not in self._steps_run
            if step is not None:
                self._steps_run.add(step)
        if first_time and self.on_step is not None and step is not None:
            self.on_step(step)
        if deferred:
            # Claude Code lists MCP tools by name only and loads their schemas through
            # its ToolSearch tool, as a real model is told to.
            names = ",".join(f"mcp__agent-mesh__{s.tool}" for s in self.script if s.tool)
            chosen = Step(tool="ToolSearch", args={"query": f"select:{names}"}, search=True)
        elif pending:
            # Claude Code 2.1.197 connects MCP servers in the background in -p mode and
            # offers this tool until they are up; its description tells the model to.
            chosen = Step(tool="WaitForMcpServers", args={"servers": ["agent-mesh"]}, search=True)
        elif step is None:
            chosen = say("ok")
        else:
            chosen = self.script[step]
            if chosen.tool is not None:
                match = [n for n in tools if n.endswith(chosen.tool)]
                chosen = Step(tool=match[0], args=chosen.args) if match else say("no such tool")
        if kind == "other":
            _send_json(h, _other_reply(path))
            return
        stream = _wants_stream(kind, path, body)
        n = self._next_id()
        if kind == "anthropic":
            if path.split("?")[0].endswith("count_tokens"):
                _send_json(h, {"input_tokens": 100})
            elif stream:
                _send_sse(h, _anthropic_events(chosen, n), named=True)
            else:
                _send_json(h, _anthropic_message(chosen, n))
        elif kind == "responses":
            _send_sse(h, _responses_events(chosen, n), named=True)
        elif kind == "gemini":
            schema = _json_schema(body)
            if ":countTokens" in path:
                _send_json(h, {"totalTokens": 100})
            elif schema is not None and step is None:
                # A side request that wants JSON (Gemini's model router): an object that
                # fits its schema, so the host does not retry.
                _send_json(h, _gemini_chunk(say(json.dumps(_fit(schema)))))
            elif stream:
                _send_sse(h, [_gemini_chunk(chosen)], named=False)
            else:
                _send_json(h, _gemini_chunk(chosen))
        elif kind == "chat":
            if stream:
                _send_sse(h, _chat_chunks(chosen, n), named=False, done=True)
            else:
                _send_json(h, _chat_completion(chosen, n))


# -- request shapes -----------------------------------------------------------------------


def _kind(path: str, body: Any) -> str:
    bare = path.split("?")[0]
    if bare.endswith(("/messages", "/messages/count_tokens")):
        return "anthropic"
    if bare.endswith("/responses"):
        return "responses"
    if ":generateContent" in bare or ":streamGenerateContent" in bare or ":countTokens" in bare:
        return "gemini"
    if bare.endswith("/chat/completions"):
        return "chat"
    return "other"


def _wants_stream(kind: str, path: str, body: Any) -> bool:
    if kind == "gemini":
        return ":streamGenerateContent" in path
    if kind == "responses":
        return True
    return isinstance(body, dict) and bool(body.get("stream"))


def _tool_names(kind: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    names: list[str] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if kind == "gemini":
            for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
                names.append(str(decl.get("name")))
        elif kind == "chat":
            names.append(str((tool.get("function") or {}).get("name")))
        elif tool.get("type") == "namespace":
            # Codex groups a server's tools under one namespace tool.
            for inner in tool.get("tools") or []:
                names.append(f"{tool.get('name')}__{inner.get('name')}")
        elif "name" in tool:
            names.append(str(tool["name"]))
        elif "function" in tool:
            names.append(str(tool["function"].get("name")))
    return names


def _tool_result_count(kind: str, body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    count = 0
    if kind == "anthropic":
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, list):
                count += sum(
                    1
                    for b in content
                    if isinstance(b, dict)
                    and b.get("type") == "tool_result"
                    and not str(b.get("tool_use_id", "")).startswith("toolu_ts")
                )
    elif kind == "responses":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") in (
                "function_call_output",
                "custom_tool_call_output",
                "mcp_tool_call_output",
            ):
                count += 1
    elif kind == "gemini":
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                if isinstance(part, dict) and "functionResponse" in part:
                    count += 1
    elif kind == "chat":
        count = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
    return count


# -- replies ------------------------------------------------------------------------------


def _send_json(h: BaseHTTPRequestHandler, data: Any) -> None:
    raw = json.dumps(data).encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(raw)))
    h.end_headers()
    h.wfile.write(raw)


def _send_sse(
    h: BaseHTTPRequestHandler, events: list[dict[str, Any]], *, named: bool, done: bool = False
) -> None:
    chunks = []
    for event in events:
        head = f"event: {event['type']}\n" if named and "type" in event else ""
        chunks.append(f"{head}data: {json.dumps(event)}\n\n")
    if done:
        chunks.append("data: [DONE]\n\n")
    raw = "".join(chunks).encode()
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Cache-Control", "no-cache")
    h.send_header("Content-Length", str(len(raw)))
    h.end_headers()
    h.wfile.write(raw)
    h.wfile.flush()


def _other_reply(path: str) -> Any:
    if "models" in path:
        return {
            "object": "list",
            "data": [{"id": "test-model", "object": "model", "created": 0, "owned_by": "test"}],
            "models": [],
        }
    return {}


USAGE_A = {"input_tokens": 10, "output_tokens": 5}


def _anthropic_message(step: Step, n: int) -> dict[str, Any]:
    if step.tool:
        content: list[dict[str, Any]] = [
            {
                "type": "tool_use",
                "id": f"toolu_{'ts' if step.search else 'mx'}{n:04d}",
                "name": step.tool,
                "input": step.args,
            }
        ]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": step.text or ""}]
        stop = "end_turn"
    return {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": USAGE_A,
    }


def _anthropic_events(step: Step, n: int) -> list[dict[str, Any]]:
    message = _anthropic_message(step, n)
    block = message["content"][0]
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}}
    ]
    if step.tool:
        events.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {**block, "input": {}},
            }
        )
        events.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": json.dumps(step.args)},
            }
        )
    else:
        events.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        events.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": block["text"]},
            }
        )
    events.append({"type": "content_block_stop", "index": 0})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": 5},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _responses_events(step: Step, n: int) -> list[dict[str, Any]]:
    rid = f"resp_{n:04d}"
    if step.tool:
        namespace, _, name = (
            step.tool.rpartition("__") if "__" in step.tool else ("", "", step.tool)
        )
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_{n:04d}",
            "call_id": f"call_{n:04d}",
            "name": name,
            "arguments": json.dumps(step.args),
            "status": "completed",
        }
        if namespace:
            item["namespace"] = namespace
    else:
        item = {
            "type": "message",
            "id": f"msg_{n:04d}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": step.text or "", "annotations": []}],
        }
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    return [
        {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {
            "type": "response.completed",
            "response": {"id": rid, "status": "completed", "output": [item], "usage": usage},
        },
    ]


def _json_schema(body: Any) -> dict[str, Any] | None:
    config = body.get("generationConfig") if isinstance(body, dict) else None
    if not isinstance(config, dict) or "json" not in str(config.get("responseMimeType", "")):
        return None
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    return schema if isinstance(schema, dict) else {}


def _fit(schema: dict[str, Any]) -> Any:
    """A small value that satisfies a JSON schema (enough for classifier requests)."""
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _fit(v) for k, v in props.items() if isinstance(v, dict)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "ok"


def _gemini_chunk(step: Step) -> dict[str, Any]:
    if step.tool:
        part: dict[str, Any] = {"functionCall": {"name": step.tool, "args": step.args}}
    else:
        part = {"text": step.text or ""}
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-pro",
    }


def _chat_completion(step: Step, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text}
    finish = "stop"
    if step.tool:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n:04d}",
                    "type": "function",
                    "function": {"name": step.tool, "arguments": json.dumps(step.args)},
                }
            ],
        }
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _chat_chunks(step: Step, n: int) -> list[dict[str, Any]]:
    base = {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "test-model",
    }
    if step.tool:
        delta: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": f"call_{n:04d}",
                    "type": "function",
                    "function": {"name": step.tool, "arguments": json.dumps(step.args)},
                }
            ],
        }
        finish = "tool_calls"
    else:
        delta = {"role": "assistant", "content": step.text or ""}
        finish = "stop"
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        },
    ]

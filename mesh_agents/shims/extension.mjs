// agent-mesh for GitHub Copilot CLI: puts this Copilot session on the mesh.
//
// Installed by `mesh install copilot` as ~/.copilot/extensions/agent-mesh/extension.mjs.
// A thin bridge and nothing more: it starts `mesh mcp` (the Python MCP server, which
// registers this workspace at once, heartbeats, enforces every rule and frames every
// message), offers that server's tools to Copilot under the same names, and hands each
// message the server pushes to `session.send({mode: "immediate"})`, so it reaches the
// model before its next call, as the original Node.js extension did. No mesh logic lives here.

import { spawn } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { joinSession } from "@github/copilot-sdk/extension";

const HERE = dirname(fileURLToPath(import.meta.url));
const CHANNEL = "notifications/claude/channel";
const PROTOCOL = "2025-11-25";

// `AGENT_MESH_EXTENSION_LOG=FILE`: one JSON line per step of each push (received, handed
// to session.send, accepted, acknowledged), with the epoch time in ms, so the time from a
// send to the model request can be split into ours and Copilot's. Off unless set.
const LOG_FILE = process.env.AGENT_MESH_EXTENSION_LOG;
function trace(step, id, extra = {}) {
  if (!LOG_FILE) return;
  try {
    appendFileSync(LOG_FILE, JSON.stringify({ t: Date.now(), step, message_id: id, ...extra }) + "\n");
  } catch {
    // a log that cannot be written must not stop delivery
  }
}

// The command that runs `mesh` (written by `mesh install copilot`), else `mesh` on PATH.
function meshCommand() {
  if (process.env.AGENT_MESH_COMMAND) return JSON.parse(process.env.AGENT_MESH_COMMAND);
  try {
    return JSON.parse(readFileSync(join(HERE, "agent-mesh.json"), "utf8")).command;
  } catch {
    return ["mesh"];
  }
}

// Line-delimited JSON-RPC to `mesh mcp` over its stdin/stdout.
class MeshServer {
  constructor(argv) {
    this.nextId = 1;
    this.pending = new Map();
    // Pushes that arrive before the session exists wait here (set before the child
    // starts, so none can be dropped); `onChannel` is replaced once the session is up.
    this.early = [];
    this.onChannel = (params) => this.early.push(params);
    this.child = spawn(argv[0], [...argv.slice(1), "mcp"], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    this.child.on("error", (error) => this.failAll(error));
    this.child.on("exit", (code) => this.failAll(new Error(`mesh mcp exited (${code})`)));
    createInterface({ input: this.child.stdout }).on("line", (line) => this.receive(line));
  }

  failAll(error) {
    for (const { reject } of this.pending.values()) reject(error);
    this.pending.clear();
  }

  write(message) {
    this.child.stdin.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
  }

  receive(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      return;
    }
    if (message.method === CHANNEL) {
      trace("received", Number(message.params?.meta?.message_id));
      this.onChannel(message.params);
    } else if (message.method !== undefined && message.id !== undefined) {
      this.write({ id: message.id, result: {} }); // ping
    } else if (this.pending.has(message.id)) {
      const { resolve, reject } = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) reject(new Error(message.error.message));
      else resolve(message.result);
    }
  }

  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.write({ id, method, params });
    });
  }

  close() {
    this.child.stdin.end();
  }
}

const command = meshCommand();
const server = new MeshServer(command);
let init, tools;
try {
  init = await server.request("initialize", {
    protocolVersion: PROTOCOL,
    // Declaring the channel capability asks the server to push each message to us.
    capabilities: { experimental: { "claude/channel": {} } },
    clientInfo: { name: "agent-mesh-copilot-extension", version: "0.1.0" },
  });
  server.write({ method: "notifications/initialized" });
  ({ tools } = await server.request("tools/list", {}));
} catch (error) {
  throw new Error(
    `agent-mesh: could not start \`${command.join(" ")} mcp\` (${error.message}); ` +
      "is agent-mesh installed? Run `mesh install copilot` again.",
  );
}

let session = null;
// A pushed message is marked read only after Copilot accepted it: `session.send`
// resolved, then `agent-mesh/ack`. A refused send leaves it unread for check_inbox and
// the per-call notice (the server offers each message once per session).
function deliver(params) {
  const id = Number(params.meta?.message_id);
  trace("send", id);
  session
    .send({ prompt: params.content, mode: "immediate" })
    .then(() => {
      trace("accepted", id);
      return Number.isInteger(id) ? server.request("agent-mesh/ack", { message_ids: [id] }) : null;
    })
    .then((acked) => acked && trace("acked", id, { marked: acked.marked }))
    .catch((error) => {
      trace("failed", id, { error: String(error) });
      session.log?.(`agent-mesh: message ${params.meta?.message_id} not delivered: ${error}`);
    });
}

session = await joinSession({
  tools: tools.map((tool) => ({
    name: tool.name,
    description: tool.description,
    parameters: tool.inputSchema,
    handler: async (args) => {
      const result = await server.request("tools/call", { name: tool.name, arguments: args ?? {} });
      const text = result.content
        .filter((block) => block.type === "text")
        .map((block) => block.text)
        .join("\n\n");
      return { textResultForLlm: text, resultType: result.isError ? "failure" : "success" };
    },
  })),
  hooks: {
    // The server's own instructions, once, so the model knows the mesh is there.
    onSessionStart: async () => ({ additionalContext: init.instructions ?? "" }),
  },
});
session.on?.("session.shutdown", () => server.close());
server.onChannel = deliver;
server.early.splice(0).forEach(deliver);

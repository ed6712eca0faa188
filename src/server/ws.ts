/**
 * The WebSocket routes, served on the HTTP server's `upgrade` event (hono
 * answers a plain GET of the same paths with 426, and documents them):
 *
 * - `/vms/{name}/exec`: one command, the protocol of src/api/exec-protocol.ts.
 * - `/vms/{name}/console`: the VM's serial console, bytes both ways as
 *   binary frames (one client at a time, as QEMU's console socket takes).
 */
import type { IncomingMessage } from "node:http";
import { connect as netConnect } from "node:net";
import { dirname, join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { SkiffError, type RunningExec, type Skiff } from "../index.js";
import { httpStatusOf, toErrorBody } from "../api/errors.js";
import { decodeChunk, encodeChunk, execControlSchema, type ExecReply } from "../api/exec-protocol.js";
import { execStartSchema } from "../api/schemas.js";
import type { AgentConnections } from "./agents.js";
import { rawErrorResponse, validationError } from "./http.js";

/** Largest frame a client may send (stdin chunks, control frames). */
const maxFrameBytes = 1 << 20;

export interface UpgradeOptions {
  skiff: Skiff;
  /** The held agent connections an exec runs on. */
  agents: AgentConnections;
  /** Refuses a request that lacks the right credentials; undefined lets it through. */
  authorize: (req: IncomingMessage) => SkiffError | undefined;
}

/** The `upgrade` listener for the node server. */
export function upgradeHandler(opts: UpgradeOptions): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes });
  return (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://skiff");
    const m = /^\/vms\/([^/]+)\/(exec|console)$/.exec(url.pathname);
    const refused = m === null ? new SkiffError("ERR_SKIFF_USAGE", `no WebSocket route at ${url.pathname}`, { hint: "WebSockets: /vms/{name}/exec and /vms/{name}/console" }) : opts.authorize(req);
    if (refused !== undefined) {
      socket.end(rawErrorResponse(m === null ? 404 : httpStatusOf(refused.code), "Refused", refused));
      return;
    }
    const name = decodeURIComponent(m![1]!);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const served = m![2] === "exec" ? serveExec(opts.agents, name, ws) : serveConsole(opts.skiff, name, ws);
      served.catch((err: unknown) => closeWithError(ws, err));
    });
  };
}

function send(ws: WebSocket, reply: ExecReply): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(reply));
}

function closeWithError(ws: WebSocket, err: unknown): void {
  send(ws, { type: "error", error: toErrorBody(err) });
  ws.close(1011, "error");
}

/** A Writable that forwards what the command writes as frames of one stream. */
function frames(ws: WebSocket, stream: "stdout" | "stderr"): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      if (ws.readyState !== ws.OPEN) return done();
      // Wait for the socket to take it: a slow reader slows the command instead of filling the server's memory.
      ws.send(encodeChunk(stream, chunk), { binary: true }, () => done());
    },
  });
}

function parseJson(data: RawData, what: string): unknown {
  try {
    return JSON.parse(data.toString());
  } catch {
    throw new SkiffError("ERR_SKIFF_USAGE", `malformed JSON in the ${what}`, { hint: "text frames are JSON objects (src/api/exec-protocol.ts)" });
  }
}

/** How long a client may take to send its start frame. */
const startWithinMs = 30_000;

/**
 * One exec. Every frame is taken from the moment the socket opens: stdin,
 * eof and resizes that follow the start frame closely arrive while the
 * command is still being started, and are held (stdin in its pipe, the
 * window size and signals until the command runs).
 */
function serveExec(agents: AgentConnections, name: string, ws: WebSocket): Promise<void> {
  const stdin = new PassThrough();
  let running: RunningExec | undefined;
  let window: { cols: number; rows: number } | undefined;
  const signals: (string | number)[] = [];
  let begun: Promise<void> | undefined;
  let left = false;
  let exited = false;
  const timer = setTimeout(() => closeWithError(ws, new SkiffError("ERR_SKIFF_TIMEOUT", `no start frame within ${startWithinMs / 1000} s`)), startWithinMs);
  const refuse = (err: unknown) => send(ws, { type: "error", error: toErrorBody(err) });
  const signal = (sig: string | number) => void running?.sendSignal(sig).catch(refuse);

  const begin = async (data: RawData): Promise<void> => {
    clearTimeout(timer);
    const parsed = execStartSchema.safeParse(parseJson(data, "start frame"));
    if (!parsed.success) throw validationError(parsed.error, "start frame");
    const { type: _type, timeoutMs, ...req } = parsed.data;
    await agents.use(name, async (conn) => {
      if (left) return;
      running = await conn.start(req, { stdin, stdout: frames(ws, "stdout"), stderr: frames(ws, "stderr"), ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      // The client left while the command started: nobody reads it, end it (see the close handler).
      if (left) hangUp(running);
      send(ws, { type: "started" });
      if (window !== undefined) running.setWindow(window);
      for (const sig of signals.splice(0)) signal(sig);
      const result = await running.done.finally(() => (exited = true));
      if (!left) {
        send(ws, { type: "exit", code: result.code, ...(result.signal === undefined ? {} : { signal: result.signal }) });
        ws.close(1000, "exit");
      }
    });
  };

  ws.on("close", () => {
    left = true;
    clearTimeout(timer);
    stdin.end();
    // A client that leaves ends its command, as an SSH client's end would: the connection is shared and stays open.
    if (running !== undefined && !exited) hangUp(running);
  });
  ws.on("message", (data, isBinary) => {
    try {
      if (begun === undefined) {
        if (isBinary) throw new SkiffError("ERR_SKIFF_USAGE", "the first frame must be the start frame (JSON)");
        begun = begin(data).catch((err: unknown) => closeWithError(ws, err));
        return;
      }
      if (isBinary) {
        const chunk = decodeChunk(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
        if (chunk?.stream !== "stdin") throw new SkiffError("ERR_SKIFF_USAGE", "a binary frame of an unknown stream", { hint: "stdin frames start with byte 0" });
        stdin.write(chunk.data);
        return;
      }
      const control = execControlSchema.safeParse(parseJson(data, "control frame"));
      if (!control.success) throw validationError(control.error, "control frame");
      const c = control.data;
      if (c.type === "eof") stdin.end();
      else if (c.type === "resize") {
        window = { cols: c.cols, rows: c.rows };
        running?.setWindow(window);
      } else if (running === undefined) signals.push(c.signal);
      else signal(c.signal);
    } catch (err) {
      if (begun === undefined) closeWithError(ws, err);
      else refuse(err);
    }
  });
  return new Promise((resolve) => ws.once("close", () => resolve()));
}

/** SIGKILL for a command whose client went away (one that ended meanwhile is no error). */
function hangUp(running: RunningExec): void {
  void running.sendSignal("KILL").catch(() => undefined);
}

async function serveConsole(skiff: Skiff, name: string, ws: WebSocket): Promise<void> {
  const info = await skiff.inspect(name);
  if (info.state !== "running" && info.state !== "paused") {
    throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, { hint: `start it (POST /vms/${name}/start)`, place: name });
  }
  // The console socket sits beside the console log in the VM's run directory.
  const sock = netConnect(join(dirname(info.consoleLog), "console.sock"));
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", (err) => reject(new SkiffError("ERR_SKIFF_QEMU_FAILED", `cannot reach ${name}'s console: ${err.message}`, { cause: err })));
  });
  sock.on("data", (data) => {
    if (ws.readyState === ws.OPEN) ws.send(data, { binary: true });
  });
  sock.on("close", () => ws.close(1000, "console closed"));
  sock.on("error", () => ws.close(1011, "console error"));
  ws.on("message", (data) => sock.write(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)));
  ws.on("close", () => sock.destroy());
}

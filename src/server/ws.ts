/**
 * The WebSocket routes, served on the HTTP server's `upgrade` event (hono
 * answers a plain GET of the same paths with 426, and documents them):
 *
 * - `/vms/{name}/exec`: one command, the protocol of src/api/exec-protocol.ts.
 * - `/vms/run`: Skiff.run with the main command attached to the client (`skiff run -it --host`).
 * - `/vms/{name}/console`: the VM's serial console, bytes both ways as
 *   binary frames (one client at a time, as QEMU's console socket takes).
 */
import type { IncomingMessage } from "node:http";
import { PassThrough, Writable } from "node:stream";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { SkiffError, type ExecSession, type RunningExec, type Skiff } from "../index.js";
import { httpStatusOf, toErrorBody } from "../api/errors.js";
import { decodeChunk, encodeChunk, execControlSchema, type ExecReply } from "../api/exec-protocol.js";
import { execStartSchema, runVmSchema } from "../api/schemas.js";
import { toRunArgs } from "./routes/vms.js";
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
    const m = url.pathname === "/vms/run" ? (["", "", "run"] as const) : /^\/vms\/([^/]+)\/(exec|console)$/.exec(url.pathname);
    const refused =
      m === null
        ? new SkiffError("ERR_SKIFF_USAGE", `no WebSocket route at ${url.pathname}`, { hint: "WebSockets: /vms/run, /vms/{name}/exec and /vms/{name}/console" })
        : opts.authorize(req);
    if (refused !== undefined) {
      socket.end(rawErrorResponse(m === null ? 404 : httpStatusOf(refused.code), "Refused", refused));
      return;
    }
    const name = decodeURIComponent(m![1]!);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const served = m![2] === "run" ? serveRun(opts.skiff, ws) : m![2] === "exec" ? serveExec(opts.agents, name, ws) : serveConsole(opts.skiff, name, ws);
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
      if (chunk.length === 0 || ws.readyState !== ws.OPEN) return done();
      // Wait for the socket to take it: a slow reader slows the command instead of filling the server's memory.
      ws.send(encodeChunk(stream, chunk), { binary: true }, () => done());
    },
  });
}

/**
 * Settles once `out` has handed the socket all it was given so far (or the
 * socket closed). A command's last output and its exit reach the server
 * together; with a client slower than the command, frames() still holds
 * chunks the socket has not taken, and an `exit` sent then went out before
 * them (and the socket's close, after it, dropped them). An empty chunk is
 * the marker: frames() takes it at once, in its turn after every chunk
 * before it. `out` is not ended, so output that comes after the exit (an
 * SSH channel's data racing a timeout's close) goes the way of any other.
 */
function flushed(out: Writable, ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ws.off("close", done);
      resolve();
    };
    ws.once("close", done);
    out.write(Buffer.alloc(0), done);
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
 * One exec on `ws` over a session `open` gives. Every frame is taken from
 * the moment this is called: stdin, eof and resizes that follow the start
 * frame closely arrive while the command is still being started, and are
 * held (stdin in its pipe, the window size and signals until the command
 * runs). An empty argv is a login shell. Resolves with the exit code once
 * `exit` is sent (undefined if the client left first); the socket stays open.
 * The session is lent (`withSession`): a client that leaves has its command
 * killed, as an SSH client's end would hang it up, and the session stays.
 */
function execOnSocket(ws: WebSocket, withSession: (fn: (conn: ExecSession) => Promise<void>) => Promise<void>): Promise<number | undefined> {
  const stdin = new PassThrough();
  let running: RunningExec | undefined;
  let window: { cols: number; rows: number } | undefined;
  const signals: (string | number)[] = [];
  let begun: Promise<number | undefined> | undefined;
  let left = false;
  let exited = false;
  let settle!: (code: number | undefined) => void;
  const settled = new Promise<number | undefined>((resolve) => (settle = resolve));
  const timer = setTimeout(() => closeWithError(ws, new SkiffError("ERR_SKIFF_TIMEOUT", `no start frame within ${startWithinMs / 1000} s`)), startWithinMs);
  const refuse = (err: unknown) => send(ws, { type: "error", error: toErrorBody(err) });
  const signal = (sig: string | number) => void running?.sendSignal(sig).catch(refuse);

  const begin = async (data: RawData): Promise<number | undefined> => {
    clearTimeout(timer);
    const parsed = execStartSchema.safeParse(parseJson(data, "start frame"));
    if (!parsed.success) throw validationError(parsed.error, "start frame");
    const { type: _type, timeoutMs, ...req } = parsed.data;
    let code: number | undefined;
    await withSession(async (conn) => {
      if (left) return;
      const io = { stdin, stdout: frames(ws, "stdout"), stderr: frames(ws, "stderr") };
      running =
        req.argv.length === 0
          ? await conn.shell({ tty: req.tty ?? false }, io)
          : await conn.start(req, { ...io, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
      // The client left while the command started: nobody reads it, end it (see onClose).
      if (left) hangUp(running);
      send(ws, { type: "started" });
      if (window !== undefined) running.setWindow(window);
      for (const sig of signals.splice(0)) signal(sig);
      const ended = running.done.finally(() => (exited = true));
      // What the command wrote goes out before its exit (or its error).
      const flush = () => Promise.all([flushed(io.stdout, ws), flushed(io.stderr, ws)]);
      await ended.then(flush, flush);
      const result = await ended;
      if (left) return;
      send(ws, { type: "exit", code: result.code, ...(result.signal === undefined ? {} : { signal: result.signal }) });
      code = result.code;
    });
    return code;
  };

  const onClose = () => {
    left = true;
    clearTimeout(timer);
    stdin.end();
    // A client that leaves ends its command, as an SSH client's end would: the session is lent and stays open.
    if (running !== undefined && !exited) hangUp(running);
    settle(undefined);
  };
  const onMessage = (data: RawData, isBinary: boolean) => {
    try {
      if (begun === undefined) {
        if (isBinary) throw new SkiffError("ERR_SKIFF_USAGE", "the first frame must be the start frame (JSON)");
        begun = begin(data);
        begun.then(settle, (err: unknown) => {
          closeWithError(ws, err);
          settle(undefined);
        });
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
  };
  ws.on("close", onClose);
  ws.on("message", onMessage);
  // A socket closed already (its close event gone by) has nobody to run a command for.
  if (ws.readyState !== ws.OPEN) onClose();
  return settled.finally(() => {
    clearTimeout(timer);
    ws.off("close", onClose);
    ws.off("message", onMessage);
  });
}

/** `/vms/{name}/exec`: one command on the server's held connection to the VM, then the socket closes. */
async function serveExec(agents: AgentConnections, name: string, ws: WebSocket): Promise<void> {
  const code = await execOnSocket(ws, (fn) => agents.use(name, fn));
  if (code !== undefined) ws.close(1000, "exit");
}

/**
 * `/vms/run`: Skiff.run with its main command attached to the client, as
 * `skiff run -it` is to a terminal. The client's first frame is `run` (the
 * body of POST /vms/run); the server answers `attach` with the main request
 * when the VM is up, the exec protocol follows on the same socket, and
 * `ran` (the VM and the exit code) ends it. A client that leaves hangs the
 * command up; run then stops or removes the VM as it would.
 */
function serveRun(skiff: Skiff, ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    ws.once("close", () => resolve());
    ws.once("message", (data) => {
      void (async () => {
        const frame = parseJson(data, "run frame") as { type?: unknown };
        if (frame.type !== "run") throw new SkiffError("ERR_SKIFF_USAGE", "the first frame must be the run frame", { hint: 'send {"type":"run", …the body of POST /vms/run}' });
        const { type: _type, ...body } = frame;
        const parsed = runVmSchema.safeParse(body);
        if (!parsed.success) throw validationError(parsed.error, "run frame");
        const [options, run] = toRunArgs(parsed.data);
        const result = await skiff.run(options, {
          ...run,
          attach: async (conn, req) => {
            // The client left while the VM was being made: hang the command up at once (run then stops or removes the VM).
            if (ws.readyState !== ws.OPEN) return 129;
            ws.send(JSON.stringify({ type: "attach", request: req }));
            // The session is run's own: it closes it.
            const code = await execOnSocket(ws, (fn) => fn(conn));
            return code ?? 129;
          },
        });
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "ran", vm: result.vm, code: result.code ?? 0 }));
        ws.close(1000, "ran");
      })().catch((err: unknown) => closeWithError(ws, err));
    });
  });
}

function hangUp(running: RunningExec): void {
  void running.sendSignal("KILL").catch(() => undefined);
}

async function serveConsole(skiff: Skiff, name: string, ws: WebSocket): Promise<void> {
  const con = await skiff.console(name);
  con.output.on("data", (data: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(data, { binary: true });
  });
  con.output.on("close", () => ws.close(1000, "console closed"));
  con.output.on("error", () => ws.close(1011, "console error"));
  ws.on("message", (data) => con.input.write(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)));
  ws.on("close", () => con.close());
}

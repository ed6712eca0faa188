/**
 * The client's side of the exec WebSocket protocol (exec-protocol.ts): one
 * command on a socket (`/vms/{name}/exec`), and `/vms/run`, where Skiff.run
 * on the server hands the main command to the caller's `attach` and the
 * exec protocol follows on the same socket. Frames from the server are the
 * guest's output and the server's word: JSON is parsed, never trusted for
 * more than its shape.
 */
import type { WebSocket } from "ws";
import type { ExecIO, ExecRequest, ExecResult, ExecSession, MainRequest, RunVmOptions, RunVmResult, RunningExec, VmInfo, WindowSize } from "../index.js";
import { fromErrorBody, type ErrorBody } from "./errors.js";
import { decodeChunk, encodeChunk, type ExecControl, type ExecReply, type ExecStart } from "./exec-protocol.js";
import type { RunVmBody } from "./schemas.js";

type Io = ExecIO & { timeoutMs?: number };

function parseFrame(data: Buffer): { type?: unknown } & Record<string, unknown> {
  try {
    const frame = JSON.parse(data.toString()) as unknown;
    if (typeof frame === "object" && frame !== null) return frame as Record<string, unknown>;
  } catch {
    // falls through to the error below
  }
  throw fromErrorBody({ code: "ERR_SKIFF_AGENT", message: "the server sent a frame that is not a JSON object" }, 0);
}

/**
 * Start `req` on an open socket: sends the start frame, streams stdin out
 * and stdout/stderr in, and settles `done` on the `exit` (or `error`)
 * frame; its listeners leave the socket then, so a socket that carries more
 * (`/vms/run`) goes on serving its owner.
 */
export function execOverSocket(ws: WebSocket, name: string, req: ExecRequest, io: Io): Promise<RunningExec> {
  const control = (frame: ExecControl | ExecStart) => ws.send(JSON.stringify(frame));
  let started!: { resolve: () => void; reject: (e: unknown) => void };
  let ended!: { resolve: (r: ExecResult) => void; reject: (e: unknown) => void };
  const start = new Promise<void>((resolve, reject) => (started = { resolve, reject }));
  const done = new Promise<ExecResult>((resolve, reject) => (ended = { resolve, reject }));
  done.catch(() => undefined);
  const cleanup = () => {
    ws.off("message", onMessage);
    ws.off("close", onClose);
    ws.off("error", fail);
    io.stdin?.off("data", onStdin);
    io.stdin?.off("end", onStdinEnd);
  };
  function fail(err: unknown) {
    cleanup();
    started.reject(err);
    ended.reject(err);
  }
  const onStdin = (chunk: Buffer | string) => ws.send(encodeChunk("stdin", typeof chunk === "string" ? Buffer.from(chunk) : chunk));
  const onStdinEnd = () => ws.readyState === ws.OPEN && control({ type: "eof" });
  function onMessage(data: Buffer, isBinary: boolean) {
    if (isBinary) {
      const chunk = decodeChunk(data);
      const out = chunk?.stream === "stdout" ? io.stdout : chunk?.stream === "stderr" ? io.stderr : undefined;
      if (chunk !== undefined) out?.write(chunk.data);
      return;
    }
    const reply = parseFrame(data) as ExecReply;
    if (reply.type === "started") started.resolve();
    else if (reply.type === "exit") {
      cleanup();
      ended.resolve({ code: reply.code, ...(reply.signal === undefined ? {} : { signal: reply.signal }) });
    } else if (reply.type === "error") fail(fromErrorBody(reply.error as ErrorBody, 0));
  }
  function onClose() {
    fail(fromErrorBody({ code: "ERR_SKIFF_AGENT", message: `the exec connection to ${name} closed before the command ended` }, 0));
  }
  ws.on("message", onMessage);
  ws.on("close", onClose);
  ws.on("error", fail);
  const { timeoutMs } = io;
  control({ type: "start", ...req, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  if (io.stdin === undefined) control({ type: "eof" });
  else {
    io.stdin.on("data", onStdin);
    io.stdin.once("end", onStdinEnd);
  }
  return start.then(() => ({
    done,
    sendSignal: async (signal: string | number) => control({ type: "signal", signal }),
    setWindow: (size: WindowSize) => control({ type: "resize", cols: size.cols, rows: size.rows }),
  }));
}

/** A login shell is a start frame with an empty argv. */
export function shellRequest(tty: ExecRequest["tty"] | undefined): ExecRequest {
  return { argv: [], tty: tty ?? true };
}

/**
 * `/vms/run` on an open socket: the run frame, then `attach` with the main
 * request (the caller runs it through a session on this socket), then `ran`.
 */
export function runOverSocket(ws: WebSocket, body: RunVmBody, attach: NonNullable<RunVmOptions["attach"]>): Promise<RunVmResult> {
  return new Promise<RunVmResult>((resolve, reject) => {
    let attached: Promise<number> | undefined;
    let result: RunVmResult | undefined;
    let error: ErrorBody | undefined;
    const session = (vm: string): ExecSession => ({
      start: (req, io = {}) => execOverSocket(ws, vm, req, io),
      shell: (opts = {}, io = {}) => execOverSocket(ws, vm, shellRequest(opts.tty), io),
      close: async () => undefined,
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const frame = parseFrame(data);
      if (frame.type === "attach" && attached === undefined) {
        attached = attach(session("run"), frame.request as MainRequest);
        attached.catch(reject);
      } else if (frame.type === "ran") result = { vm: frame.vm as VmInfo, code: Number(frame.code) };
      else if (frame.type === "error") error = frame.error as ErrorBody;
    });
    ws.on("error", reject);
    ws.on("close", () => {
      if (result !== undefined) resolve(result);
      else reject(fromErrorBody(error ?? { code: "ERR_SKIFF_AGENT", message: "the run connection closed before the run ended" }, 0));
    });
    ws.send(JSON.stringify({ type: "run", ...body }));
  });
}

/**
 * A small QMP client over a unix socket. QMP is line-delimited JSON: a
 * greeting, then responses matched to commands by `id`, interleaved with
 * asynchronous events at any time.
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";
import { SkiffError, errnoOf } from "../errors.js";
import { net } from "../util/builtins.js";

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** Result of `query-status`. */
export interface QmpStatus {
  status: string;
  running: boolean;
  singlestep?: boolean;
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpConnectOptions {
  /** Deadline for connect + greeting + capabilities negotiation. */
  timeoutMs?: number;
  /** Default deadline of each command. */
  commandTimeoutMs?: number;
  /** Used in messages and as the error `place` (a VM name). */
  label?: string;
}

export interface QmpClientEvents {
  event: [QmpEvent];
  close: [];
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const defaultTimeoutMs = 5_000;

export class QmpClient extends EventEmitter<QmpClientEvents> {
  readonly greeting: QmpGreeting;
  private readonly socket: Socket;
  private readonly pending = new Map<number, Pending>();
  private readonly commandTimeoutMs: number;
  private readonly label: string | undefined;
  private nextId = 1;
  private closed = false;

  /** Connect, read the greeting and leave capabilities negotiation mode. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    const { socket, greeting, rest } = await openSocket(socketPath, timeoutMs, options.label);
    const client = new QmpClient(socket, greeting, rest, options);
    try {
      await client.execute("qmp_capabilities", undefined, { timeoutMs });
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  private constructor(socket: Socket, greeting: QmpGreeting, pendingText: string, options: QmpConnectOptions) {
    super();
    this.socket = socket;
    this.greeting = greeting;
    this.commandTimeoutMs = options.commandTimeoutMs ?? defaultTimeoutMs;
    this.label = options.label;
    const decoder = new StringDecoder("utf8");
    let buffer = pendingText;
    socket.on("data", (chunk: Buffer) => {
      buffer += decoder.write(chunk);
      const end = buffer.lastIndexOf("\n");
      if (end < 0) return;
      const lines = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      this.feed(lines);
    });
    socket.resume();
    // Errors end in "close"; pending commands are failed there.
    socket.on("error", () => undefined);
    socket.on("close", () => this.onClose());
  }

  /**
   * Run a QMP command and resolve with its `return` value. A QMP error
   * response rejects with ERR_SKIFF_QMP carrying QEMU's class and description.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError(command));
    const id = this.nextId++;
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new SkiffError("ERR_SKIFF_TIMEOUT", `QEMU did not answer QMP command ${command} within ${timeoutMs} ms`, {
            hint: "QEMU may be hung; `skiff stop --force` kills it",
            ...this.placeOpt(),
          }),
        );
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Run a human monitor (HMP) command line and return its text output. */
  hmp(commandLine: string, options: { timeoutMs?: number } = {}): Promise<string> {
    return this.execute<string>("human-monitor-command", { "command-line": commandLine }, options);
  }

  /** Resolve with the next event named `name` (e.g. SHUTDOWN), or fail after the deadline. */
  waitForEvent(name: string, timeoutMs: number): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off("event", onEvent);
        this.off("close", onClose);
      };
      const onEvent = (e: QmpEvent): void => {
        if (e.event !== name) return;
        cleanup();
        resolve(e);
      };
      const onClose = (): void => {
        cleanup();
        reject(this.closedError(`waiting for ${name}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new SkiffError("ERR_SKIFF_TIMEOUT", `no ${name} event from QEMU within ${timeoutMs} ms`, this.placeOpt()));
      }, timeoutMs);
      this.on("event", onEvent);
      this.on("close", onClose);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  private feed(text: string): void {
    for (const line of text.split("\n")) {
      const trimmed = line.trim();
      if (trimmed !== "") this.dispatch(trimmed);
    }
  }

  private dispatch(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      // A garbled line means the stream can no longer be trusted.
      this.failAll(new SkiffError("ERR_SKIFF_QMP", `QEMU sent something that is not JSON on QMP: ${line.slice(0, 200)}`, this.placeOpt()));
      this.close();
      return;
    }
    if (typeof message.event === "string") {
      // QEMU leaves out `data` on events that carry none (STOP, RESUME).
      this.emit("event", { data: {}, ...message } as unknown as QmpEvent);
      return;
    }
    const id = message.id;
    const pending = typeof id === "number" ? this.pending.get(id) : undefined;
    if (pending === undefined) return; // an answer to a command that already timed out
    this.pending.delete(id as number);
    clearTimeout(pending.timer);
    if ("error" in message) {
      const error = (message.error ?? {}) as { class?: string; desc?: string };
      pending.reject(
        new SkiffError("ERR_SKIFF_QMP", `QMP command ${pending.command} failed: ${error.desc ?? "unknown error"}`, {
          ...this.placeOpt(),
          details: { command: pending.command, class: error.class },
        }),
      );
    } else {
      pending.resolve(message.return);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(this.closedError());
    this.emit("close");
  }

  private failAll(err: SkiffError): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
  }

  private closedError(command?: string): SkiffError {
    const what = command === undefined ? "" : ` (${command})`;
    return new SkiffError("ERR_SKIFF_QMP", `QMP connection to QEMU closed${what}`, {
      hint: "QEMU has exited or closed the monitor; check the VM's console log",
      ...this.placeOpt(),
    });
  }

  private placeOpt(): { place?: string } {
    return this.label === undefined ? {} : { place: this.label };
  }
}

/**
 * openSocketOnce, again while the socket's backlog is full (EAGAIN): QEMU
 * serves one QMP client at a time, and a VM's other clients (a `skiff ps`,
 * a server looking at its VMs) can fill the queue for a moment; that is a
 * wait for a turn, not a failure.
 */
async function openSocket(socketPath: string, timeoutMs: number, label: string | undefined): Promise<{ socket: Socket; greeting: QmpGreeting; rest: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await openSocketOnce(socketPath, Math.max(1, deadline - Date.now()), label);
    } catch (err) {
      const busy = err instanceof SkiffError && errnoOf(err.cause) === "EAGAIN";
      if (!busy || Date.now() + busyRetryMs >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, busyRetryMs));
    }
  }
}

const busyRetryMs = 25;

/** Connect and read up to the greeting line; return whatever followed it unparsed. */
function openSocketOnce(
  socketPath: string,
  timeoutMs: number,
  label: string | undefined,
): Promise<{ socket: Socket; greeting: QmpGreeting; rest: string }> {
  const place = label === undefined ? {} : { place: label };
  return new Promise((resolve, reject) => {
    const socket = net().connect(socketPath);
    const decoder = new StringDecoder("utf8");
    let buffer = "";
    const fail = (err: SkiffError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(
        new SkiffError("ERR_SKIFF_TIMEOUT", `no QMP greeting from ${socketPath} within ${timeoutMs} ms`, {
          hint: "another client may hold the QMP socket (QEMU serves one at a time), or QEMU is hung",
          ...place,
        }),
      );
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffer += decoder.write(chunk);
      const end = buffer.indexOf("\n");
      if (end < 0) return;
      let greeting: unknown;
      try {
        greeting = (JSON.parse(buffer.slice(0, end)) as { QMP?: unknown }).QMP;
      } catch {
        greeting = undefined;
      }
      if (greeting === undefined) {
        fail(new SkiffError("ERR_SKIFF_QMP", `${socketPath} did not greet like a QMP monitor`, place));
        return;
      }
      clearTimeout(timer);
      // Hold further data until the client's own reader is attached.
      socket.pause();
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onEarlyClose);
      resolve({ socket, greeting: greeting as QmpGreeting, rest: buffer.slice(end + 1) });
    };
    const onError = (err: Error): void => {
      const errno = errnoOf(err);
      const gone = errno === "ENOENT" || errno === "ECONNREFUSED";
      fail(
        new SkiffError("ERR_SKIFF_QMP", `cannot connect to QMP socket ${socketPath} (${errno ?? err.message})`, {
          hint: gone ? "the VM is not running (its QEMU is gone)" : "check the permissions of the VM directory",
          cause: err,
          ...place,
        }),
      );
    };
    const onEarlyClose = (): void => {
      fail(new SkiffError("ERR_SKIFF_QMP", `QMP socket ${socketPath} closed before the greeting`, place));
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onEarlyClose);
  });
}

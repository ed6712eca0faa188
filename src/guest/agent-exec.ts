/**
 * One running command in the guest: an SSH session channel wired to the
 * caller's streams, with its exit status, signals, window size and timeout.
 *
 * Signals go as SSH "signal" requests (RFC 4254), which the guest's dropbear
 * honours, for the thirteen names the RFC lists. ssh2 only sends one while
 * the channel is writable, i.e. before stdin reached EOF; after that the
 * request is written through ssh2's protocol object directly (the RFC allows
 * channel requests after EOF, and dropbear takes them). Any other signal,
 * or the case where ssh2's internals are not what we expect, goes through
 * the command's pidfile: `skiff-kill <pidfile> <signo>` on another session.
 */
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type { ClientChannel } from "ssh2";
import { SkiffError } from "../errors.js";

export interface ExecIO {
  /** Forwarded to the command; its end becomes EOF in the guest. Without it the command sees EOF at once. */
  stdin?: Readable;
  /** Receives the command's stdout (not ended when the command ends). Without it output is dropped. */
  stdout?: Writable;
  /** Receives the command's stderr (not ended). On a PTY everything arrives on stdout. */
  stderr?: Writable;
}

export interface ExecOptions extends ExecIO {
  /** Kill the command (SIGKILL) and fail with ERR_SKIFF_TIMEOUT after this long. */
  timeoutMs?: number;
}

export interface ExecResult {
  /**
   * Exit code; 128 + the signal number when a signal ended the command (as
   * a shell reports it); 255 when the guest reported neither, which dropbear
   * does for signals outside RFC 4254's list (BUS, SYS, XCPU…).
   */
  code: number;
  /** Name of the signal that ended the command ("INT"), if one did. */
  signal?: string;
}

export interface WindowSize {
  cols: number;
  rows: number;
}

export interface RunningExec {
  /**
   * Settles when the command has ended and all its output was handed to the
   * caller's streams (written to them: a stream that writes on
   * asynchronously, to a file or a socket, may still be at it; end it and
   * wait for its 'finish' before reading what it wrote).
   */
  readonly done: Promise<ExecResult>;
  /** Send a signal ("INT", "SIGTERM", 15) to the command; a no-op once it has ended. */
  sendSignal(signal: string | number): Promise<void>;
  /** Resize the command's PTY (no effect without one). */
  setWindow(size: WindowSize): void;
}

export interface ChannelContext {
  /** What runs, for messages ("`sleep 100` in VM web"). */
  what: string;
  vmName: string;
  timeoutMs?: number;
  /** Signal the command through its pidfile; absent for sessions without one (login shells). */
  killViaPidfile?: (signo: number) => Promise<void>;
  /** Whether the SSH session still stands, to tell a lost guest from an exit the guest could not name. */
  sessionAlive?: () => boolean;
}

/** The names RFC 4254 allows in a "signal" request. */
const sshSignals = new Set(["ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2"]);

/** What a command that ended without a status the guest could name reports. */
const unnamedExitCode = 255;

/** How long a timed-out command gets to report its end after SIGKILL before we stop waiting. */
const killGraceMs = 2_000;

/** "INT", "sigint", "SIGINT", "2" or 2 → { name: "INT", number: 2 }; ERR_SKIFF_BAD_SIGNAL otherwise. */
export function parseSignal(signal: string | number): { name: string; number: number } {
  const table = constants.signals as Record<string, number>;
  const text = String(signal).trim().toUpperCase();
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    const found = Object.entries(table).find(([, n]) => n === number);
    if (found) return { name: found[0].slice(3), number };
  } else {
    const name = text.startsWith("SIG") ? text.slice(3) : text;
    const number = table[`SIG${name}`];
    if (number !== undefined) return { name, number };
  }
  throw new SkiffError("ERR_SKIFF_BAD_SIGNAL", `unknown signal: ${String(signal)}`, {
    hint: "use a name like INT, TERM, KILL, HUP or USR1, or its number",
  });
}

/** Exit code a shell reports for a command ended by `signal` (ssh2 names it "SIGINT"). */
export function signalExitCode(signal: string): number {
  const number = (constants.signals as Record<string, number>)[signal.startsWith("SIG") ? signal : `SIG${signal}`];
  return 128 + (number ?? 0);
}

/** Wire `channel` to `io` and watch it until it closes. */
export function watchChannel(channel: ClientChannel, io: ExecIO, ctx: ChannelContext): RunningExec {
  let ended = false;
  let exit: ExecResult | undefined;
  let timedOut = false;
  let settle!: { resolve: (r: ExecResult) => void; reject: (e: unknown) => void };
  const done = new Promise<ExecResult>((resolve, reject) => (settle = { resolve, reject }));
  const timers: NodeJS.Timeout[] = [];
  const detach: Array<() => void> = [];

  const finish = (outcome: ExecResult | SkiffError) => {
    if (ended) return;
    ended = true;
    for (const t of timers) clearTimeout(t);
    io.stdin?.unpipe(channel);
    for (const undo of detach) undo();
    if (outcome instanceof SkiffError) settle.reject(outcome);
    else settle.resolve(outcome);
  };
  const timeoutError = () =>
    new SkiffError("ERR_SKIFF_TIMEOUT", `${ctx.what} did not finish within ${ctx.timeoutMs} ms and was killed`, {
      details: { vm: ctx.vmName, timeoutMs: ctx.timeoutMs },
    });

  channel.on("exit", (...args: unknown[]) => {
    const [code, signal] = args;
    if (typeof code === "number") exit = { code };
    else if (typeof signal === "string") {
      const name = signal.startsWith("SIG") ? signal.slice(3) : signal;
      exit = { code: signalExitCode(name), signal: name };
    }
  });
  channel.on("close", () => {
    if (timedOut) return finish(timeoutError());
    // ssh2 emits "close" once stdout has been read to its end; stderr may still be draining.
    if (exit) {
      const result = exit;
      if (channel.stderr.readableEnded) return finish(result);
      channel.stderr.once("end", () => finish(result));
      return;
    }
    if (ctx.sessionAlive?.()) return finish({ code: unnamedExitCode });
    finish(
      new SkiffError("ERR_SKIFF_AGENT", `lost the connection to the guest agent of ${ctx.vmName} while running ${ctx.what}`, {
        hint: `check that the VM still runs (\`skiff ps -a\`) and read its console: \`skiff logs ${ctx.vmName}\``,
      }),
    );
  });
  // Writes racing the command's end fail harmlessly; the close above reports what happened.
  channel.on("error", () => {});

  detach.push(forward(channel, io.stdout), forward(channel.stderr, io.stderr));
  if (io.stdin) io.stdin.pipe(channel);
  else channel.end();

  const sendSignal = async (signal: string | number): Promise<void> => {
    const { name, number } = parseSignal(signal);
    if (ended || exit) return;
    if (sshSignals.has(name)) {
      if (channel.writable) {
        channel.signal(name);
        return;
      }
      if (signalAfterEof(channel, name)) return;
    }
    if (ctx.killViaPidfile) return ctx.killViaPidfile(number);
    throw new SkiffError("ERR_SKIFF_BAD_SIGNAL", `cannot send SIG${name} to ${ctx.what}`, {
      hint: "a login shell takes only INT, TERM, KILL, HUP, QUIT, USR1, USR2, ABRT, ALRM, FPE, ILL, PIPE and SEGV",
    });
  };

  if (ctx.timeoutMs !== undefined) {
    timers.push(
      setTimeout(() => {
        timedOut = true;
        void sendSignal("KILL").catch(() => {});
        // The killed command's end closes the channel; closing it ourselves
        // is only for a guest past answering.
        timers.push(
          setTimeout(() => {
            channel.close();
            finish(timeoutError());
          }, killGraceMs),
        );
      }, ctx.timeoutMs),
    );
  }

  return {
    done,
    sendSignal,
    setWindow(size: WindowSize) {
      channel.setWindow(size.rows, size.cols, 0, 0);
    },
  };
}

/**
 * Pipe a channel's output into the caller's stream (never ending it). If
 * that stream goes away first, the rest is drained and dropped: a stalled
 * channel would never report the command's end.
 */
function forward(source: Readable, sink: Writable | undefined): () => void {
  if (!sink) {
    source.resume();
    return () => {};
  }
  const drain = () => {
    source.unpipe(sink);
    source.resume();
  };
  source.pipe(sink, { end: false });
  sink.once("close", drain);
  sink.once("error", drain);
  return () => {
    sink.off("close", drain);
    sink.off("error", drain);
  };
}

/** What ssh2's Channel.signal does, minus its refusal once stdin has ended. */
function signalAfterEof(channel: ClientChannel, name: string): boolean {
  const internals = channel as unknown as {
    outgoing?: { id?: unknown; state?: unknown };
    _client?: { _protocol?: { signal?: unknown } };
  };
  const protocol = internals._client?._protocol;
  const id = internals.outgoing?.id;
  const state = internals.outgoing?.state;
  // "eof": we sent EOF; the channel is still open for requests until either side closes it.
  if (typeof protocol?.signal !== "function" || typeof id !== "number" || (state !== "open" && state !== "eof")) return false;
  (protocol.signal as (id: number, signal: string) => void).call(protocol, id, name);
  return true;
}

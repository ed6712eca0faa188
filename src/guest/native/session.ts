/**
 * One session of skiff's own guest protocol on an agent port (frames.ts;
 * guest/native.c): commands one after another, each with stdin, stdout and
 * stderr as separate streams under flow control, signals by number, a
 * PTY with resize, and its exit status.
 *
 * Flow control: the guest sends at most `window` output bytes beyond what
 * the host granted; the host grants bytes once the caller's stream took
 * them (a full stream holds the guest back instead of host memory), and
 * the same the other way for stdin. A guest that sends beyond its credit,
 * an unknown frame or a bad length is treated as hostile: the session is
 * cut and the command fails with ERR_SKIFF_AGENT.
 */
import { constants } from "node:os";
import type { Socket } from "node:net";
import type { Readable, Writable } from "node:stream";
import { SkiffError } from "../../errors.js";
import { parseSignal, type ExecIO, type ExecResult, type RunningExec, type WindowSize } from "../agent-exec.js";
import { guestText } from "../guest-text.js";
import { encodeFrame, filePath, FrameDecoder, FrameError, G, H, maxFrame, nativeVersion, parseStatReply, u32, window, windowSize, type Frame, type GuestStat } from "./frames.js";

export interface NativeCommand {
  /** EXEC (the default), or GET or PUT: a file of the image in place of a command's output or input. */
  type?: typeof H.exec | typeof H.get | typeof H.put;
  /** EXEC's payload (frames.ts execPayload), or GET's or PUT's. */
  payload: Buffer;
  /** What runs, for messages ("`sleep 100` in VM web"). */
  what: string;
  timeoutMs?: number;
}

/** Grant output credit once this much was taken (or everything was). */
const grantEvery = 65536;
/** How long a timed-out command gets to report its end after SIGKILL. */
const killGraceMs = 2_000;
/** How long the guest has to say HELLO after READY. */
const helloTimeoutMs = 10_000;

interface Current {
  onFrame(frame: Frame): void;
  onLost(err: SkiffError): void;
}

export class NativeSession {
  readonly socket: Socket;
  readonly vmName: string;
  readonly #decoder = new FrameDecoder();
  #current: Current | undefined;
  #lost: SkiffError | undefined;

  private constructor(socket: Socket, vmName: string) {
    this.socket = socket;
    this.vmName = vmName;
  }

  /**
   * Take over a port socket just after READY. Resolves with the session
   * once the guest said HELLO, or "ssh" when the guest answered with SSH
   * (a guest from before this protocol: the caller falls back on SSH).
   */
  static open(socket: Socket, vmName: string): Promise<NativeSession | "ssh"> {
    return new Promise((resolve, reject) => {
      const session = new NativeSession(socket, vmName);
      let first = true;
      const cleanup = () => {
        clearTimeout(timer);
        socket.off("data", onData);
        socket.off("close", onClose);
        socket.off("error", onClose);
      };
      const fail = (why: string) => {
        cleanup();
        socket.destroy();
        reject(protocolError(vmName, why));
      };
      const onData = (chunk: Buffer) => {
        if (first && chunk.length > 0) {
          first = false;
          if (chunk[0] === 0x53 /* "S": SSH's identification line */) {
            cleanup();
            socket.pause();
            socket.unshift(chunk);
            return resolve("ssh");
          }
        }
        let frames: Frame[];
        try {
          frames = session.#decoder.push(chunk);
        } catch (err) {
          return fail(err instanceof Error ? err.message : String(err));
        }
        const [hello, ...rest] = frames;
        if (hello === undefined) return;
        if (hello.type !== G.hello || hello.payload.length !== 8) return fail(`expected HELLO, got frame type 0x${hello.type.toString(16)}`);
        const version = hello.payload.readUInt32BE(0);
        if (version !== nativeVersion) return fail(`the guest speaks version ${version} of skiff's protocol, this skiff ${nativeVersion}`);
        // The guest says nothing more until asked.
        if (rest.length > 0) return fail("frames after HELLO, unasked");
        cleanup();
        session.#attach();
        resolve(session);
      };
      const onClose = () => fail("the port closed before the guest said HELLO");
      const timer = setTimeout(() => fail(`no HELLO within ${helloTimeoutMs} ms`), helloTimeoutMs);
      socket.on("data", onData);
      socket.on("close", onClose);
      socket.on("error", onClose);
      socket.resume();
    });
  }

  /** False once the session was cut or ended. */
  get isOpen(): boolean {
    return this.#lost === undefined && !this.socket.destroyed;
  }

  /** End the session; a command still running is hung up by the guest. */
  end(): void {
    this.socket.end();
  }

  /** Run one command; the session must be idle. Resolves once it runs. */
  exec(cmd: NativeCommand, io: ExecIO & { tty?: boolean }): Promise<RunningExec> {
    if (this.#current !== undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", "a native session runs one command at a time");
    if (this.#lost) return Promise.reject(this.#lost);
    if (cmd.payload.length > maxFrame) {
      return Promise.reject(
        new SkiffError("ERR_SKIFF_USAGE", `command too long for the guest agent: ${cmd.payload.length} bytes of arguments and environment, at most ${maxFrame}`, {
          hint: "pass a long script on stdin (`sh -s`), or copy it into the VM with `skiff cp` and run the file",
        }),
      );
    }
    return new Promise((resolveStart, rejectStart) => {
      let started = false;
      let ended = false;
      let exit: ExecResult | undefined;
      let settle!: { resolve: (r: ExecResult) => void; reject: (e: unknown) => void };
      const done = new Promise<ExecResult>((resolve, reject) => (settle = { resolve, reject }));
      const timers: NodeJS.Timeout[] = [];
      // Output: what the guest may still send (its credit, as seen here) and what the caller took but was not yet granted.
      let guestCredit = window;
      let ungranted = 0;
      // Stdin: what the guest will still take, and what waits for credit.
      let stdinCredit = window;
      const stdinQueue: Buffer[] = [];
      let stdinEnded = false;
      let stdinEofSent = false;
      const stdin: Readable | undefined = io.stdin;
      /** Set once the timeout killed the command: its EXIT then settles it as a timeout. */
      let exitAs: (() => SkiffError) | undefined;

      const send = (type: number, payload?: Uint8Array) => {
        if (!this.socket.destroyed) this.socket.write(encodeFrame(type, payload));
      };
      const finish = (outcome: ExecResult | SkiffError) => {
        if (ended) return;
        ended = true;
        this.#current = undefined;
        for (const t of timers) clearTimeout(t);
        if (stdin) {
          stdin.off("data", onStdinData);
          stdin.off("end", onStdinEnd);
          stdin.off("error", onStdinEnd);
          stdin.pause();
        }
        if (outcome instanceof SkiffError) {
          // Before STARTED the caller holds no RunningExec: the start fails, and `done` is nobody's.
          if (!started) {
            done.catch(() => {});
            rejectStart(outcome);
          }
          settle.reject(outcome);
        } else settle.resolve(outcome);
      };
      const grant = (n: number) => {
        if (ended) return;
        ungranted += n;
        if (ungranted >= grantEvery || guestCredit + ungranted >= window || guestCredit === 0) {
          send(H.credit, u32(ungranted));
          guestCredit += ungranted;
          ungranted = 0;
        }
      };
      const output = (data: Buffer, sink: Writable | undefined) => {
        if (data.length > guestCredit) return this.#cut(`the guest sent ${data.length} output bytes with credit for ${guestCredit}`);
        guestCredit -= data.length;
        handOver(sink, data, () => grant(data.length));
      };
      const flushStdin = () => {
        while (stdinQueue.length > 0 && stdinCredit > 0 && !ended) {
          const head = stdinQueue[0] as Buffer;
          const n = Math.min(head.length, stdinCredit, maxFrame);
          send(H.stdin, head.subarray(0, n));
          stdinCredit -= n;
          if (n === head.length) stdinQueue.shift();
          else stdinQueue[0] = head.subarray(n);
        }
        if (stdinQueue.length === 0) {
          if (stdinEnded && !stdinEofSent) {
            stdinEofSent = true;
            send(H.stdinEof);
          } else if (stdin?.isPaused()) stdin.resume();
        }
      };
      const onStdinData = (chunk: Buffer | string) => {
        stdinQueue.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
        flushStdin();
        if (stdinQueue.length > 0) stdin?.pause();
      };
      const onStdinEnd = () => {
        stdinEnded = true;
        flushStdin();
      };
      const timeoutError = () =>
        new SkiffError("ERR_SKIFF_TIMEOUT", `${cmd.what} did not finish within ${cmd.timeoutMs} ms and was killed`, {
          details: { vm: this.vmName, timeoutMs: cmd.timeoutMs },
        });

      const running: RunningExec = {
        done,
        sendSignal: async (signal: string | number) => {
          const { number } = parseSignal(signal);
          if (ended || exit) return;
          send(H.signal, u32(number));
        },
        setWindow: (size: WindowSize) => {
          if (!ended) send(H.resize, windowSize(size.rows, size.cols));
        },
      };

      this.#current = {
        onFrame: (frame) => {
          const p = frame.payload;
          switch (frame.type) {
            case G.started:
              if (started) return this.#cut("a second STARTED");
              started = true;
              if (stdin) {
                stdin.on("data", onStdinData);
                stdin.once("end", onStdinEnd);
                stdin.once("error", onStdinEnd);
                stdin.resume();
              } else {
                stdinEnded = true;
                flushStdin();
              }
              if (cmd.timeoutMs !== undefined) {
                timers.push(
                  setTimeout(() => {
                    send(H.signal, u32(9));
                    timers.push(
                      setTimeout(() => {
                        finish(timeoutError());
                        this.socket.destroy();
                      }, killGraceMs),
                    );
                    // The killed command's EXIT settles it as a timeout.
                    exitAs = timeoutError;
                  }, cmd.timeoutMs),
                );
              }
              return resolveStart(running);
            case G.stdout:
            case G.stderr:
              if (!started) return this.#cut("output before STARTED");
              return output(p, frame.type === G.stdout ? io.stdout : (io.stderr ?? (io.tty ? io.stdout : undefined)));
            case G.stdinCredit: {
              if (p.length !== 4) return this.#cut("a STDIN_CREDIT of the wrong size");
              const more = p.readUInt32BE(0);
              if (more > window - stdinCredit) return this.#cut(`stdin credit beyond the window (${more})`);
              stdinCredit += more;
              return flushStdin();
            }
            case G.exit: {
              if (!started || p.length !== 8) return this.#cut("a bad EXIT");
              const code = p.readUInt32BE(0);
              const signo = p.readUInt32BE(4);
              if (code > 255 || signo > 64) return this.#cut(`an exit status out of range (${code}, signal ${signo})`);
              const name = signo > 0 ? signalName(signo) : undefined;
              exit = name === undefined ? { code } : { code, signal: name };
              if (exitAs) return finish(exitAs());
              return finish(exit);
            }
            case G.error: {
              const text = guestText(p);
              if (!started) {
                // The guest refused the request (or could not start it): the session stays usable.
                return finish(
                  new SkiffError("ERR_SKIFF_AGENT", `guest agent of ${this.vmName}: cannot start ${cmd.what}: ${text}`, {
                    hint: `read \`skiff logs ${this.vmName}\``,
                  }),
                );
              }
              return this.#cut(`the guest reported: ${text}`);
            }
            default:
              return this.#cut(`an unexpected frame (type 0x${frame.type.toString(16)})`);
          }
        },
        onLost: (err) => finish(err),
      };
      send(cmd.type ?? H.exec, cmd.payload);
    });
  }

  /** What the guest's STAT says of `path` in the image: a GuestStat, or the errno it met. */
  stat(path: string, opts: { follow?: boolean; timeoutMs?: number } = {}): Promise<GuestStat | { errno: number }> {
    const payload = Buffer.concat([Buffer.from([opts.follow === false ? 1 : 0]), filePath(path)]);
    return this.#ask(H.stat, payload, G.statReply, opts.timeoutMs ?? 30_000, (p) => parseStatReply(p), "STAT");
  }

  /** Round trip to the guest (its liveness). */
  async ping(timeoutMs = 5_000): Promise<void> {
    await this.#ask(H.ping, Buffer.from("skiff"), G.pong, timeoutMs, () => true, "PING");
  }

  /** One frame out, one answer of type `answer` back, read by `parse` (undefined: hostile, the session is cut). */
  #ask<T>(type: number, payload: Buffer, answer: number, timeoutMs: number, parse: (p: Buffer) => T | undefined, what: string): Promise<T> {
    if (this.#current !== undefined) return Promise.reject(new SkiffError("ERR_SKIFF_INTERNAL", `${what} on a busy native session`));
    if (this.#lost) return Promise.reject(this.#lost);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#current = undefined;
        reject(new SkiffError("ERR_SKIFF_AGENT", `the guest agent of ${this.vmName} did not answer ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#current = {
        onFrame: (frame) => {
          clearTimeout(timer);
          this.#current = undefined;
          const value = frame.type === answer ? parse(frame.payload) : undefined;
          if (value !== undefined) return resolve(value);
          if (frame.type === G.error) return reject(new SkiffError("ERR_SKIFF_AGENT", `guest agent of ${this.vmName} refused ${what}: ${guestText(frame.payload)}`));
          const why = `a bad answer to ${what} (frame type 0x${frame.type.toString(16)}, ${frame.payload.length} bytes)`;
          this.#cut(why);
          reject(this.#lost ?? protocolError(this.vmName, why));
        },
        onLost: (err) => {
          clearTimeout(timer);
          this.#current = undefined;
          reject(err);
        },
      };
      this.socket.write(encodeFrame(type, payload));
    });
  }

  #attach(): void {
    this.socket.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      let broken: FrameError | undefined;
      try {
        frames = this.#decoder.push(chunk);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        // What came whole before the bad length still counts (a STARTED, an EXIT); then the session is cut.
        frames = err.frames;
        broken = err;
      }
      for (const frame of frames) {
        if (this.#lost) return;
        this.#dispatch(frame);
      }
      if (broken) this.#cut(broken.message);
    });
    this.socket.on("error", () => {});
    this.socket.on("close", () => {
      this.#lost ??= new SkiffError("ERR_SKIFF_AGENT", `lost the connection to the guest agent of ${this.vmName}`, {
        hint: `check that the VM still runs (\`skiff ps -a\`) and read its console: \`skiff logs ${this.vmName}\``,
      });
      this.#current?.onLost(this.#lost);
    });
  }

  #dispatch(frame: Frame): void {
    if (this.#current === undefined) return this.#cut(`a frame (type 0x${frame.type.toString(16)}) while no command runs`);
    this.#current.onFrame(frame);
  }

  /** The guest broke the protocol: cut the session and fail what runs on it. */
  #cut(why: string): void {
    if (this.#lost) return;
    this.#lost = protocolError(this.vmName, why);
    const current = this.#current;
    this.socket.destroy();
    current?.onLost(this.#lost);
  }
}

function protocolError(vmName: string, why: string): SkiffError {
  return new SkiffError("ERR_SKIFF_AGENT", `the guest agent of ${vmName} broke skiff's protocol: ${why}`, {
    hint: `the VM's guest may be compromised or from another skiff version; restart it, and read \`skiff logs ${vmName}\``,
  });
}

/** Hand `data` to `sink`, then call `taken` once it has it (after 'drain' when it is full; at once when there is none or it is gone). */
function handOver(sink: Writable | undefined, data: Buffer, taken: () => void): void {
  if (!sink || sink.destroyed || sink.writableEnded) return taken();
  if (sink.write(data)) return taken();
  let called = false;
  const once = () => {
    if (called) return;
    called = true;
    sink.off("drain", once);
    sink.off("close", once);
    sink.off("error", once);
    taken();
  };
  sink.on("drain", once);
  sink.on("close", once);
  sink.on("error", once);
}

function signalName(signo: number): string | undefined {
  const found = Object.entries(constants.signals as Record<string, number>).find(([, n]) => n === signo);
  return found ? found[0].slice(3) : `SIG${signo}`.slice(3) || undefined;
}


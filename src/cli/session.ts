/**
 * Wiring a command in the guest to this terminal: stdin/stdout/stderr,
 * raw mode and window size for a PTY, Ctrl-C forwarded as SIGINT when there
 * is no PTY (with a PTY the guest's terminal handles it).
 */
import { SkiffError } from "../pure.js";
import type { ExecRequest, ExecSession, RunningExec } from "../index.js";

export interface SessionFlags {
  interactive: boolean;
  tty: boolean;
}

function windowSize(): { cols: number; rows: number } {
  // 0 where the terminal reports no size (script(1), some CI): the usual default instead.
  return { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
}

export function checkTty(flags: SessionFlags, place: string): void {
  if (flags.tty && flags.interactive && !process.stdin.isTTY) {
    throw new SkiffError("ERR_SKIFF_USAGE", "the input device is not a TTY", {
      place,
      hint: "drop -t, or run from a terminal",
    });
  }
}

/** Run `req` (or a login shell when argv is empty) in the guest, attached to this process's stdio; returns the exit code. */
export async function attachSession(
  conn: ExecSession,
  req: Omit<ExecRequest, "tty">,
  flags: SessionFlags & { timeoutMs?: number },
): Promise<number> {
  const tty = flags.tty ? { ...windowSize(), term: process.env.TERM ?? "xterm-256color" } : false;
  const io = {
    ...(flags.timeoutMs === undefined ? {} : { timeoutMs: flags.timeoutMs }),
    ...(flags.interactive ? { stdin: process.stdin } : {}),
    stdout: process.stdout,
    stderr: process.stderr,
  };
  const raw = tty !== false && flags.interactive && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  let running: RunningExec | undefined;
  const onResize = () => running?.setWindow(windowSize());
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    // First Ctrl-C goes to the guest command; a third one gives up on it.
    if (interrupts >= 3) process.exit(130);
    void running?.sendSignal("INT");
  };
  try {
    running = req.argv.length === 0 ? await conn.shell({ tty: tty === false ? false : tty }, io) : await conn.start({ ...req, tty }, io);
    process.stdout.on("resize", onResize);
    if (!raw) process.on("SIGINT", onSigint);
    const result = await running.done;
    return result.code;
  } finally {
    process.stdout.off("resize", onResize);
    process.off("SIGINT", onSigint);
    if (raw) process.stdin.setRawMode(false);
    if (flags.interactive) process.stdin.pause();
  }
}

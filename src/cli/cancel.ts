/**
 * Long commands that must tidy up before they exit when ^C, SIGTERM or
 * SIGHUP comes (main's own handlers exit at once): the work gets an
 * AbortSignal, and the process exits with the signal's code only once the
 * work has settled. A second signal exits at once.
 */
import { constants } from "node:os";

const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
export type StopSignal = (typeof signals)[number];

class Cancelled extends Error {
  constructor(readonly sig: StopSignal) {
    super(`cancelled by ${sig}`);
  }
}

/** The exit code for a command ended by `sig` (130, 143, 129). */
export function signalExitCode(sig: StopSignal): number {
  return 128 + constants.signals[sig];
}

/** `work` with the three signals turned into its signal's abort, main's handlers set aside meanwhile. */
async function takingSignals<T>(what: string, work: (stop: AbortController) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onSignal = (sig: StopSignal): void => {
    if (stop.signal.aborted) process.exit(signalExitCode(sig));
    process.stderr.write(`skiff: ${sig}: stopping ${what}…\n`);
    stop.abort(new Cancelled(sig));
  };
  const saved = signals.map((sig) => [sig, process.listeners(sig)] as const);
  for (const sig of signals) {
    process.removeAllListeners(sig);
    process.on(sig, onSignal);
  }
  try {
    return await work(stop);
  } finally {
    for (const [sig, listeners] of saved) {
      process.off(sig, onSignal);
      for (const l of listeners) process.on(sig, l as (s: StopSignal) => void);
    }
  }
}

/** Work that a signal cancels: what it made is undone by the work itself, then skiff exits with the signal's code. */
export async function cancellable<T>(what: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return takingSignals(what, async (stop) => {
    try {
      return await work(stop.signal);
    } catch (err) {
      const reason: unknown = stop.signal.reason;
      if (reason instanceof Cancelled) {
        process.stderr.write(`skiff: ${what} stopped; nothing was kept\n`);
        process.exit(signalExitCode(reason.sig));
      }
      throw err;
    }
  });
}

/**
 * Work that runs until a signal and then winds down in order (a foreground
 * `up` follows logs, then stops its VMs): `work` sees the abort and
 * finishes; the signal that came, if one did, is returned once it has.
 */
export async function untilSignal(what: string, work: (signal: AbortSignal) => Promise<void>): Promise<StopSignal | undefined> {
  return takingSignals(what, async (stop) => {
    await work(stop.signal);
    const reason: unknown = stop.signal.reason;
    return reason instanceof Cancelled ? reason.sig : undefined;
  });
}

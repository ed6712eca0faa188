/**
 * A long command that must tidy up before it exits when ^C, SIGTERM or
 * SIGHUP comes (main's own handlers exit at once): the work gets an
 * AbortSignal, and the process exits with the signal's code only once the
 * work has settled. A second signal exits at once.
 */
import { constants } from "node:os";

const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
type Sig = (typeof signals)[number];

class Cancelled extends Error {
  constructor(readonly sig: Sig) {
    super(`cancelled by ${sig}`);
  }
}

export async function cancellable<T>(what: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onSignal = (sig: Sig): void => {
    if (stop.signal.aborted) process.exit(128 + constants.signals[sig]);
    process.stderr.write(`skiff: ${sig}: stopping ${what}…\n`);
    stop.abort(new Cancelled(sig));
  };
  const saved = signals.map((sig) => [sig, process.listeners(sig)] as const);
  for (const sig of signals) {
    process.removeAllListeners(sig);
    process.on(sig, onSignal);
  }
  try {
    return await work(stop.signal);
  } catch (err) {
    const reason: unknown = stop.signal.reason;
    if (reason instanceof Cancelled) {
      process.stderr.write(`skiff: ${what} stopped; nothing was kept\n`);
      process.exit(128 + constants.signals[reason.sig]);
    }
    throw err;
  } finally {
    for (const [sig, listeners] of saved) {
      process.off(sig, onSignal);
      for (const l of listeners) process.on(sig, l as (s: Sig) => void);
    }
  }
}

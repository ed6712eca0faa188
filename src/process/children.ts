/**
 * The children skiff started, as main.ts sees them when it ends: the
 * runner (runner.ts) hands over its way of ending them when it is loaded,
 * so a command that starts no process never loads the runner (nor
 * node:child_process) only to find nothing to end.
 */
type End = (graceMs: number) => Promise<void>;

const ends: End[] = [];

/** For a runner: `end` ends every child it started, with their process groups. */
export function endWithSkiff(end: End): void {
  ends.push(end);
}

/** End the children of every runner loaded: SIGTERM, then SIGKILL after `graceMs`. */
export async function endChildren(graceMs: number): Promise<void> {
  await Promise.all(ends.map((end) => end(graceMs)));
}

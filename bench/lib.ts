// Helpers shared by the TypeScript benchmarks (bench/*.ts, run with vite-node).
import { join } from "node:path";

export const root = join(import.meta.dirname, "..");
/** The built CLI; SKIFF_CLI=…/dist/cli/main.js benches another build (a copy made before a long run, say). */
export const cli = process.env.SKIFF_CLI ?? join(root, "dist", "cli", "main.js");

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Wall time of `fn`, in ms. */
export function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

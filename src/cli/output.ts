/**
 * How the CLI talks to people: errors (clean for SkiffError, with a stack
 * for bugs or under --debug), JSON for --json, tables, and progress events
 * on stderr when it is a terminal.
 */
import type { Command } from "commander";
import { ExitCode, SkiffError } from "../pure.js";
import type { ProgressEvent } from "../index.js";
import { cliPlace } from "./flag-places.js";

export interface GlobalFlags {
  debug: boolean;
  json: boolean;
  /** `--host`: the `skiff serve` to run commands against (else SKIFF_HOST, else this process). */
  host?: string;
  /** The command that runs (set before its action): errors' field places are shown as its flags (flag-places.ts). */
  command?: Command;
}

export function printError(err: unknown, flags: GlobalFlags): number {
  if (err instanceof SkiffError) {
    const at = err.place === undefined ? undefined : cliPlace(err.place, flags.command);
    if (flags.json) {
      const body = err.toJSON() as { error: Record<string, unknown> };
      process.stderr.write(JSON.stringify(at === undefined ? body : { error: { ...body.error, place: at } }) + "\n");
    } else {
      const place = at === undefined ? "" : ` (${at})`;
      process.stderr.write(`skiff: error ${err.code}${place}: ${err.message}\n`);
      const problems = err.details?.problems;
      // A config file with several problems: every one, with its place (the first is the message).
      if (Array.isArray(problems) && problems.length > 1) {
        for (const p of problems as { place?: string; message?: string }[]) process.stderr.write(`  - ${p.place ?? "?"}: ${p.message ?? ""}\n`);
      }
      if (err.hint !== undefined) process.stderr.write(`  hint: ${err.hint}\n`);
      if (flags.debug && err.stack !== undefined) process.stderr.write(err.stack + "\n");
    }
    return err.exitCode;
  }
  const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`skiff: internal error (a bug; please report it with this trace):\n${stack}\n`);
  return ExitCode.internal;
}

/**
 * Progress on stderr: one line per phase change, only when stderr is a
 * terminal (or SKIFF_PROGRESS=1). Warnings are printed always.
 */
export function progressReporter(flags: GlobalFlags): ((e: ProgressEvent) => void) | undefined {
  if (flags.json) return undefined;
  const chatty = process.stderr.isTTY || process.env.SKIFF_PROGRESS === "1";
  return (e) => {
    if (e.phase === "warning") {
      process.stderr.write(`skiff: warning: ${e.message}\n`);
      return;
    }
    if (!chatty) return;
    const secs = (e.elapsedMs / 1000).toFixed(1);
    process.stderr.write(`\x1b[2m[${secs}s] ${e.message}\x1b[0m\n`);
  };
}

/** A plain left-aligned table, like `docker ps`. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/**
 * Parsers for the values users type on the command line (memory, CPUs, env,
 * signals, durations) and formatters for what we print back. Each parser
 * throws a SkiffError naming the option field it came from (`place`: `memory`,
 * which the CLI shows as its flag) with examples.
 */
import { constants as osConstants, totalmem } from "node:os";
import { SkiffError } from "../errors.js";

/**
 * The least memory any VM may be given, whatever its kernel: what a small
 * kernel of one's own (virtio built in, no modules) needs. Whether a VM's
 * own kernel boots in its memory is checked where the kernel is known, at
 * create and start (kernel/boot-memory.ts): the Debian kernel needs ~144 MiB.
 */
export const minMemoryMiB = 64;
export const maxCpus = 255;

const memoryUnits: Record<string, number> = { k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };

/**
 * The most memory a VM may have: the host's RAM. QEMU maps all guest RAM
 * at start, and Linux's default overcommit refuses one mapping larger than
 * RAM + swap (measured: `-m 64g` on a 24 GiB host fails with "cannot set up
 * guest memory: Cannot allocate memory"); a VM given more than the host's
 * RAM could only swap. QEMU's own limit on microvm is far above any host's.
 */
export function hostMemoryMiB(): number {
  return Math.floor(totalmem() / 2 ** 20);
}

/**
 * A VM's memory in MiB: a whole number from minMemoryMiB to the host's RAM
 * (`maxMiB`), else ERR_SKIFF_BAD_MEMORY at `place`; `given` is the value as
 * the user wrote it, for the message.
 */
export function checkMemoryMiB(mib: number, place: string, opts: { maxMiB?: number; given?: string } = {}): number {
  const maxMiB = opts.maxMiB ?? hostMemoryMiB();
  const fail = (why: string, hint: string): never => {
    throw new SkiffError("ERR_SKIFF_BAD_MEMORY", `invalid memory size ${opts.given ?? `${mib} MiB`}: ${why}`, { place, hint });
  };
  const sizes = "give a size such as 256m, 512M, 1g or 1.5g (a bare number is MiB)";
  if (!Number.isInteger(mib)) return fail(`${mib} MiB is not a whole number of MiB`, sizes);
  if (mib < minMemoryMiB) return fail(`a VM needs at least ${minMemoryMiB} MiB (no Linux kernel boots in less)`, sizes);
  if (mib > maxMiB) {
    return fail(`more than this host's memory, ${formatMiB(maxMiB)}`, `give at most ${formatMiB(maxMiB)}, the host's RAM: QEMU cannot set up guest memory beyond what the host can back`);
  }
  return mib;
}

/** "1536 MiB (1.5 GiB)", or "512 MiB". */
function formatMiB(mib: number): string {
  return mib >= 1024 ? `${mib} MiB (${formatBytes(mib * 2 ** 20)})` : `${mib} MiB`;
}

/**
 * Memory size in MiB. Units are binary and case-insensitive: `k`, `m`, `g`,
 * `t`, optionally followed by `b` or `ib` (`512M`, `1g`, `2GiB`, `1.5g`).
 * A bare number is MiB, not bytes as in Docker: nobody means a 1024-byte VM,
 * and `-m 1024` is how QEMU itself reads it. At most the host's RAM
 * (`maxMiB`, see hostMemoryMiB).
 */
export function parseMemory(input: string, place = "memory", maxMiB = hostMemoryMiB()): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(input.trim());
  if (match === null) {
    throw new SkiffError("ERR_SKIFF_BAD_MEMORY", `invalid memory size ${JSON.stringify(input)}: not a size`, {
      place,
      hint: "give a size such as 256m, 512M, 1g or 1.5g (a bare number is MiB)",
    });
  }
  const unit = memoryUnits[(match[2] ?? "").toLowerCase() || "m"] ?? 1;
  return checkMemoryMiB(Number(match[1]) * unit, place, { maxMiB, given: JSON.stringify(input) });
}

/** vCPU count: a whole number from 1 to 255 (vCPUs cannot be fractions, unlike Docker's CPU quota). */
export function parseCpus(input: string, place = "cpus"): number {
  const text = input.trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > maxCpus) {
    throw new SkiffError("ERR_SKIFF_BAD_CPUS", `invalid CPU count ${JSON.stringify(input)}`, {
      place,
      hint: `give a whole number of virtual CPUs from 1 to ${maxCpus}, e.g. 2`,
    });
  }
  return n;
}

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * One `-e` value: `KEY=VALUE`, or `KEY` alone to pass the host's value on (as
 * Docker does). Returns undefined when `KEY` alone is unset on the host: the
 * variable is then left out, again as Docker does.
 */
export function parseEnv(
  input: string,
  hostEnv: NodeJS.ProcessEnv = process.env,
  place = "env",
): [key: string, value: string] | undefined {
  const eq = input.indexOf("=");
  const key = eq < 0 ? input : input.slice(0, eq);
  if (!envName.test(key)) {
    throw new SkiffError("ERR_SKIFF_BAD_ENV", `invalid environment variable ${JSON.stringify(input)}`, {
      place,
      hint: "use KEY=VALUE (KEY: letters, digits and _, not starting with a digit), or KEY to pass on the host's value",
    });
  }
  if (eq >= 0) return [key, input.slice(eq + 1)];
  const value = hostEnv[key];
  return value === undefined ? undefined : [key, value];
}

/** Several `-e` values; later ones win. */
export function parseEnvList(inputs: readonly string[], hostEnv: NodeJS.ProcessEnv = process.env, place = "env"): Record<string, string> {
  const env: Record<string, string> = {};
  for (const input of inputs) {
    const pair = parseEnv(input, hostEnv, place);
    if (pair !== undefined) env[pair[0]] = pair[1];
  }
  return env;
}

export interface Signal {
  /** "SIGKILL" */
  name: NodeJS.Signals;
  /** Linux signal number. */
  number: number;
}

const signals = osConstants.signals as Record<string, number>;

/** `KILL`, `SIGKILL`, `kill` or `9`. */
export function parseSignal(input: string, place = "signal"): Signal {
  const text = input.trim().toUpperCase();
  const fail = (): never => {
    throw new SkiffError("ERR_SKIFF_BAD_SIGNAL", `unknown signal ${JSON.stringify(input)}`, {
      place,
      hint: "give a signal name or number, e.g. TERM, SIGKILL, HUP or 9",
    });
  };
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    const name = Object.keys(signals).find((n) => signals[n] === number);
    return name === undefined ? fail() : { name: name as NodeJS.Signals, number };
  }
  const name = text.startsWith("SIG") ? text : `SIG${text}`;
  const number = signals[name];
  return number === undefined ? fail() : { name: name as NodeJS.Signals, number };
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Duration in ms. A bare number is seconds (as `docker stop -t`); otherwise
 * one or more number+unit parts: `500ms`, `10s`, `2m`, `1h`, `1m30s`, `1.5s`.
 */
/** A disk or volume size (`--disk 20G`, `size: 512m`): bytes; K/M/G/T are binary (as qemu-img's). */
export function parseDiskSize(value: string, place = "disk"): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(value.trim());
  if (!m) throw new SkiffError("ERR_SKIFF_USAGE", `not a disk size: ${value}`, { place, hint: "e.g. 20G or 512M" });
  const unit = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[(m[2] ?? "").toUpperCase() as "" | "K" | "M" | "G" | "T"];
  return Number(m[1]) * unit;
}

export function parseDuration(input: string, place = "timeout"): number {
  const text = input.trim();
  const fail = (): never => {
    throw new SkiffError("ERR_SKIFF_BAD_DURATION", `invalid duration ${JSON.stringify(input)}`, {
      place,
      hint: "give seconds (10) or a duration such as 500ms, 10s, 2m, 1m30s",
    });
  };
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return fail();
  let ms = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(part[1]) * (durationUnits[part[2] ?? ""] ?? 0);
  }
  return Math.round(ms);
}

const byteUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `0 B`, `512 B`, `1.5 KiB`, `256 MiB`, `12.3 GiB`: binary units, as memory sizes are given. */
export function formatBytes(bytes: number): string {
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < byteUnits.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  // Number() drops a trailing ".0": "256 MiB", not "256.0 MiB".
  const shown = Number(value.toFixed(digits)).toString();
  return `${shown} ${byteUnits[unit]}`;
}

/**
 * A rough length of time as Docker prints it ("Up 3 minutes", "About an
 * hour"): same thresholds as Docker's units.HumanDuration.
 */
export function formatDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** "3 minutes ago", for a time `elapsedMs` in the past (the CREATED column). */
export function formatAge(elapsedMs: number): string {
  return `${formatDuration(elapsedMs)} ago`;
}

/**
 * IPv4 forwarding for masquerade networks. A host that had it off gets it
 * back off when the last masquerade network goes (this home's, and any
 * other skiff home's on the host: they need it just as much). skiff turns it
 * on only when it finds it off, and writes the value it found to
 * `<home>/networks/ip_forward.skiff`; the file's presence is the record that
 * the current setting is skiff's doing.
 *
 * Read and written with sysctl through the runner, not fs: the setting is
 * per network namespace, and the runner is where a caller (or a test) puts
 * skiff in another one. Callers hold the networks lock, so claim and release
 * do not race each other.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf } from "../errors.js";
import type { Runner } from "../process/runner.js";
import { writeFileAtomic } from "../store/atomic.js";
import { networksDir } from "../store/paths.js";

const key = "net.ipv4.ip_forward";

export function ipForwardRecordPath(home: string): string {
  return join(networksDir(home), "ip_forward.skiff");
}

export async function readIpForward(runner: Runner): Promise<string> {
  const result = await runner.run("sysctl", ["-n", key], { check: true, debianPackage: "procps" });
  return result.stdout.trim();
}

async function writeIpForward(runner: Runner, value: string): Promise<void> {
  await runner.run("sysctl", ["-q", "-w", `${key}=${value}`], { check: true, debianPackage: "procps" });
}

async function readRecord(home: string): Promise<string | undefined> {
  try {
    return (await readFile(ipForwardRecordPath(home), "utf8")).trim();
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
}

/** Make sure forwarding is on; remember the old value if it was off and skiff has no record yet. */
export async function claimIpForward(opts: { home: string; runner: Runner }): Promise<void> {
  const current = await readIpForward(opts.runner);
  if (current === "1") return;
  if ((await readRecord(opts.home)) === undefined) {
    await mkdir(networksDir(opts.home), { recursive: true, mode: 0o700 });
    // Written before the change: a crash in between leaves a record of a value that is still true.
    await writeFileAtomic(ipForwardRecordPath(opts.home), `${current}\n`);
  }
  await writeIpForward(opts.runner, "1");
}

/**
 * Put back the value skiff found, if skiff changed it and `stillNeeded`
 * says no masquerade network (of any skiff home) is left. Returns the value put back.
 */
export async function releaseIpForward(opts: {
  home: string;
  runner: Runner;
  stillNeeded: () => Promise<boolean>;
}): Promise<string | undefined> {
  const previous = await readRecord(opts.home);
  if (previous === undefined || (await opts.stillNeeded())) return undefined;
  if (/^[0-9]+$/.test(previous)) await writeIpForward(opts.runner, previous);
  await rm(ipForwardRecordPath(opts.home), { force: true });
  return previous;
}

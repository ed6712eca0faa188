/**
 * KVM or TCG? Decided by booting a tiny guest under KVM with a deadline, never
 * by the presence of /dev/kvm: on nested hosts (PVM and friends) /dev/kvm opens
 * fine while guests crash QEMU or hang in the decompressor. The verdict is
 * cached per host kernel, QEMU version and guest kernel, since a probe costs
 * seconds when it fails.
 */
import { spawn } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, mkdir, open, readFile, rename, stat, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { delimiter, join } from "node:path";
import { SkiffError, errnoOf } from "../errors.js";
import { cachedProbe } from "../util/probe-cache.js";
import { microvmMachine } from "./args.js";
import type { Accel } from "./plan.js";

export interface AccelVerdict {
  accel: Accel;
  /** One sentence for `skiff doctor`: why this accelerator. */
  reason: string;
  /** Whether /dev/kvm exists and opens read-write (not whether KVM works). */
  kvmDevice: boolean;
  /** ISO time of the probe. */
  probedAt: string;
  /** What the verdict depends on; a cached verdict is reused only for the same key. */
  key: string;
}

export interface ProbeAccelOptions {
  qemuBinary: string;
  /** The guest kernel VMs will boot: the probe proves *this* kernel comes up under KVM. */
  kernelPath: string;
  initrdPath?: string;
  /** Deadline of the probe boot. Default 8000. */
  timeoutMs?: number;
  /** Where accel.json is kept. */
  cacheDir: string;
  /** Known QEMU version; asked from the binary when absent. */
  qemuVersion?: string;
  /** Ignore a cached verdict and probe again. */
  refresh?: boolean;
  kvmDevicePath?: string;
  /** Host kernel release; os.release() when absent. */
  hostRelease?: string;
}

export const accelCacheFile = "accel.json";
const defaultProbeTimeoutMs = 8_000;
const qemuBinaryName = "qemu-system-x86_64";

/**
 * Lines the guest kernel prints late in boot. Early lines are no proof: on
 * some nested hosts the kernel prints for a while and then hangs.
 */
const signsOfLife = /Run \/init as init process|Kernel panic|Unable to mount root|Freeing unused kernel/;

export async function probeAccel(options: ProbeAccelOptions): Promise<AccelVerdict> {
  const kvmDevicePath = options.kvmDevicePath ?? "/dev/kvm";
  const key = accelCacheKey({
    hostRelease: options.hostRelease ?? release(),
    qemuVersion: options.qemuVersion ?? (await qemuVersion(options.qemuBinary)).version,
    kernelPath: options.kernelPath,
    kernelStamp: await kernelStamp(options.kernelPath),
  });
  const now = (): string => new Date().toISOString();

  // Not cached: device permissions change (a user joins the kvm group) and checking is cheap.
  const device = await checkKvmDevice(kvmDevicePath);
  if (!device.ok) return { accel: "tcg", reason: device.reason, kvmDevice: false, probedAt: now(), key };

  if (options.refresh !== true) {
    const cached = await readCachedVerdict(options.cacheDir, key);
    if (cached !== undefined) return cached;
  }
  const timeoutMs = options.timeoutMs ?? defaultProbeTimeoutMs;
  const outcome = await bootProbe({ ...options, timeoutMs });
  const verdict: AccelVerdict = {
    accel: outcome.ok ? "kvm" : "tcg",
    reason: probeReason(outcome, timeoutMs),
    kvmDevice: true,
    probedAt: now(),
    key,
  };
  await writeCachedVerdict(options.cacheDir, verdict);
  return verdict;
}

export function accelCacheKey(facts: {
  hostRelease: string;
  qemuVersion: string;
  kernelPath: string;
  /** Size and mtime, so a replaced kernel is probed again. */
  kernelStamp: string;
}): string {
  return `host=${facts.hostRelease};qemu=${facts.qemuVersion};kernel=${facts.kernelPath}@${facts.kernelStamp}`;
}

export type ProbeOutcome =
  | { ok: true; elapsedMs: number }
  | { ok: false; kind: "timeout" }
  | { ok: false; kind: "exited"; exitCode: number | null; signal: string | null; stderr: string };

export function probeReason(outcome: ProbeOutcome, timeoutMs: number): string {
  const seconds = (ms: number): string => (ms % 1000 === 0 ? String(ms / 1000) : (ms / 1000).toFixed(1));
  if (outcome.ok) return `a KVM probe boot came up in ${(outcome.elapsedMs / 1000).toFixed(1)} s`;
  if (outcome.kind === "timeout") {
    return `KVM present but a probe boot did not come up within ${seconds(timeoutMs)} s (nested/PVM host?)`;
  }
  const how = outcome.signal !== null ? `signal ${outcome.signal}` : `code ${outcome.exitCode}`;
  const said = lastLine(outcome.stderr);
  return `KVM present but QEMU ended a probe boot early (${how})${said === "" ? "" : `: ${said}`}`;
}

export async function checkKvmDevice(path: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const handle = await open(path, "r+");
    await handle.close();
    return { ok: true };
  } catch (err) {
    const errno = errnoOf(err) ?? String(err);
    if (errno === "ENOENT") return { ok: false, reason: `${path} does not exist (no hardware virtualisation here)` };
    if (errno === "EACCES" || errno === "EPERM") {
      return { ok: false, reason: `${path} cannot be opened read-write (${errno}); join the kvm group to use KVM` };
    }
    return { ok: false, reason: `${path} cannot be opened (${errno})` };
  }
}

export async function readCachedVerdict(cacheDir: string, key: string): Promise<AccelVerdict | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(cacheDir, accelCacheFile), "utf8"));
  } catch {
    return undefined; // absent or torn: probe again
  }
  if (!isVerdict(parsed) || parsed.key !== key) return undefined;
  return parsed;
}

async function writeCachedVerdict(cacheDir: string, verdict: AccelVerdict): Promise<void> {
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const file = join(cacheDir, accelCacheFile);
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(verdict, null, 2)}\n`);
  await rename(temp, file);
}

function isVerdict(value: unknown): value is AccelVerdict {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    (v.accel === "kvm" || v.accel === "tcg") &&
    typeof v.reason === "string" &&
    typeof v.kvmDevice === "boolean" &&
    typeof v.probedAt === "string" &&
    typeof v.key === "string"
  );
}

/** Boot the kernel under KVM until it shows late-boot output, exits, or the deadline passes. */
function bootProbe(options: ProbeAccelOptions & { timeoutMs: number }): Promise<ProbeOutcome> {
  // Same machine and CPU model as real launches: `-cpu host` alone is what crashes on some hosts.
  const args = [
    "-M", microvmMachine,
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "128M",
    "-kernel", options.kernelPath,
    ...(options.initrdPath === undefined ? [] : ["-initrd", options.initrdPath]),
    // No root: the kernel panics at once and panic=-1 with -no-reboot ends QEMU.
    "-append", "console=ttyS0 panic=-1 reboot=t",
    "-serial", "stdio",
  ];
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(options.qemuBinary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let serial = "";
    let stderr = "";
    let outcome: ProbeOutcome | undefined;
    // Settle only on "close", once QEMU is really gone.
    const finish = (result: ProbeOutcome): void => {
      outcome ??= result;
      child.kill("SIGKILL");
    };
    const timer = setTimeout(() => finish({ ok: false, kind: "timeout" }), options.timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      // Keep a tail only: a marker can straddle two chunks.
      serial = (serial + chunk.toString("latin1")).slice(-4096);
      if (signsOfLife.test(serial)) finish({ ok: true, elapsedMs: Date.now() - started });
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4096);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(
        new SkiffError("ERR_SKIFF_QEMU_MISSING", `cannot run ${options.qemuBinary} (${errnoOf(err) ?? err.message})`, {
          hint: qemuInstallHint,
          cause: err,
        }),
      );
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      resolve(outcome ?? { ok: false, kind: "exited", exitCode, signal, stderr });
    });
  });
}

async function kernelStamp(kernelPath: string): Promise<string> {
  try {
    const s = await stat(kernelPath);
    return `${s.size}:${Math.trunc(s.mtimeMs)}`;
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_KERNEL_MISSING", `kernel file cannot be opened: ${kernelPath} (${errnoOf(err) ?? err})`, {
      hint: "run `skiff doctor` to see which kernel skiff boots (SKIFF_KERNEL, else the newest Debian kernel in /boot)",
      cause: err,
    });
  }
}

function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return (lines.find((l) => l.includes("error")) ?? lines.at(-1) ?? "").replace(/^qemu-system-\S+: /, "").slice(0, 200);
}

const qemuInstallHint = "run `sudo ./setup.sh`, or `sudo apt-get install qemu-system-x86`";

export interface QemuVersion {
  /** "7.2.22" */
  version: string;
  major: number;
  minor: number;
  micro: number;
  /** The whole first line of `--version`. */
  text: string;
}

const versions = new Map<string, Promise<QemuVersion>>();

/**
 * `binary --version`, asked once per process, and once per binary (util/
 * probe-cache.ts) when `cacheDir` is given: a run asked it twice, ~40 ms
 * each (the accelerator's cache key, and the versions a snapshot records).
 */
export function qemuVersion(binary: string, cacheDir?: string): Promise<QemuVersion> {
  let version = versions.get(binary);
  if (version === undefined) {
    const ask = async () => (await askQemuVersion(binary)).text;
    const text = cacheDir === undefined ? ask() : cachedProbe(cacheDir, "qemu-version", [binary], ask, (c): c is string => typeof c === "string" && versionLine.test(c));
    version = text.then((t) => parseQemuVersion(t, binary));
    versions.set(binary, version);
    version.catch(() => versions.delete(binary));
  }
  return version;
}

async function askQemuVersion(binary: string): Promise<QemuVersion> {
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(binary, ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
    child.on("error", (err) =>
      reject(
        new SkiffError("ERR_SKIFF_QEMU_MISSING", `cannot run ${binary} (${errnoOf(err) ?? err.message})`, {
          hint: qemuInstallHint,
          cause: err,
        }),
      ),
    );
    child.on("close", () => resolve(out));
  });
  return parseQemuVersion(output, binary);
}

const versionLine = /QEMU emulator version (\d+)\.(\d+)\.(\d+)/;

export function parseQemuVersion(output: string, binary = qemuBinaryName): QemuVersion {
  const match = versionLine.exec(output);
  if (match === null) {
    throw new SkiffError("ERR_SKIFF_QEMU_FAILED", `cannot tell the QEMU version of ${binary}`, {
      hint: "check that it is QEMU: run it with --version",
      details: { output: output.slice(0, 200) },
    });
  }
  const [major, minor, micro] = [match[1], match[2], match[3]].map(Number) as [number, number, number];
  return { version: `${major}.${minor}.${micro}`, major, minor, micro, text: output.split("\n")[0]?.trim() ?? "" };
}

/** Path of qemu-system-x86_64 on PATH. */
export async function findQemu(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, qemuBinaryName);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new SkiffError("ERR_SKIFF_QEMU_MISSING", `${qemuBinaryName} is not on PATH`, { hint: qemuInstallHint });
}

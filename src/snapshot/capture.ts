/**
 * Taking a snapshot of a running VM: the guest is paused only while its
 * device state is migrated to a file, its RAM file and its disk overlay are
 * copied (sparse), and so are its named volumes' disks (volumes.ts), and
 * it runs on. Measured here: ~0.1 s paused for a
 * 256 MiB guest with a young overlay; the disk copy grows with what the VM
 * wrote (it is a copy, not a new overlay taken over QMP, because the jailed
 * QEMU cannot open files created after it started, and the source VM's
 * backing chain stays as it was).
 *
 * QEMU flushes its disks when the guest stops (vm_stop drains and flushes
 * every block device), so the overlay copied while paused is consistent.
 *
 * A fork's RAM is a private mapping of its snapshot's (shared-ram.ts), with
 * no file to copy: its capture streams the RAM with the device state
 * (migrate.ts: ramInStream) and the snapshot has no `mem`. Stopping the
 * guest for all of that took 1.6 s here for a 256 MiB fork under load, and
 * 0.37–0.88 s on a quiet host. Under KVM its
 * RAM is migrated live instead: QEMU copies it while the guest runs and
 * stops it only for what changed meanwhile (its downtime is the pause
 * reported). Not under TCG, where the only guests that died after a
 * restore here (a kernel fault in timerqueue_add, an agent that hung up:
 * 3 in ~40 restores, against none in ~150 of file snapshots) had been
 * captured live. Upstream QEMU fixed lost guest writes in TCG's dirty
 * tracking during live migration in 9.0 ("Fix migration dirty bitmap
 * coherency with TCG memory access"); a raw 7.2 here lost no page in 7
 * live migrations of a busy guest, so that is a suspect, not a proof. A
 * stop first costs that pause and nothing else. A hibernation
 * is never live: its guest does not run on anyway.
 * A restore of such a snapshot loads the RAM from the stream.
 *
 * A marker in the VM's directory names the capturing process: if it is
 * killed while the guest is paused, the next command resumes the guest
 * (resumeAbandonedCaptures). Everything is made in a staging directory and
 * renamed into place whole; a failure (a full disk) removes it and leaves
 * the VM running.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { chmod, copyFile, mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { QmpClient } from "../qemu/qmp.js";
import { currentProcess, identityAlive } from "../process/pid.js";
import { readJsonIfExists, writeJsonAtomic } from "../store/atomic.js";
import type { VmRecord } from "../store/store.js";
import { crashPoint } from "../util/crash-point.js";
import type { EngineContext } from "../engine/context.js";
import { ramPath } from "./ram.js";
import { saveState } from "./migrate.js";
import { hostVersions } from "./versions.js";
import { diskUsage, listSnapshots, snapshotFiles, snapshotRoot, writeSnapshotRecord, type StoredSnapshot } from "./store.js";
import type { ProcessIdentity } from "../process/pid.js";
import { standAlone, volumeCopies, type VolumeCopy } from "./volumes.js";
import { makeUsersDir } from "./boot-users.js";

export interface CaptureOptions {
  name?: string;
  kind?: StoredSnapshot["kind"];
  bootKey?: string;
}

/** What cannot be snapshotted, said before the guest is touched. */
export function checkSnapshottable(record: VmRecord): void {
  const { spec } = record.config;
  const refuse = (why: string, hint: string) =>
    new SkiffError("ERR_SKIFF_SNAPSHOT_UNSUPPORTED", `${record.name} cannot be snapshotted: ${why}`, { place: record.name, hint });
  if (spec.boot?.kind === "cloud") throw refuse("it boots a cloud image (firmware and its own kernel)", "snapshots are for microVM images");
  const mounts = spec.mounts ?? [];
  if (mounts.some((m) => m.kind === "bind")) {
    // virtio-9p blocks QEMU's migration while the guest has the share mounted, and the host directory is live state outside the VM.
    throw refuse("it has bind mounts (virtio-9p shares, which QEMU cannot migrate)", "copy the files in with `skiff cp` instead of -v HOST:GUEST");
  }
}

/**
 * Where the running guest's RAM is: its own file (copied), or a private
 * mapping (a fork's; streamed). QEMU says which; a QEMU with no RAM backend
 * (an older skiff's) is refused.
 */
async function ramMode(qmp: QmpClient, record: VmRecord, home: string): Promise<"file" | "stream"> {
  if (existsSync(ramPath(home, record.id))) return "file";
  const share = await qmp.execute<boolean>("qom-get", { path: "/objects/ram", property: "share" }).catch(() => undefined);
  if (share === false) return "stream";
  throw new SkiffError("ERR_SKIFF_SNAPSHOT_UNSUPPORTED", `${record.name} cannot be snapshotted: its QEMU was started without a RAM file (by an older skiff)`, {
    place: record.name,
    hint: `restart it once (\`skiff restart ${record.name}\`)`,
  });
}

/**
 * How long a fork's RAM is copied live before its guest is stopped for the rest: an idle 256 MiB guest's took
 * well under a second here; one that writes its memory faster than the copy would never let it end.
 */
const liveCopyMs = 5_000;

/** A snapshot just taken, and how long its guest was paused for it. */
export type Captured = StoredSnapshot & { pausedMs: number };

/** Snapshot a running VM; the guest runs on afterwards (a paused one stays paused). */
export async function captureVm(ctx: EngineContext, record: VmRecord, opts: CaptureOptions = {}): Promise<Captured> {
  checkSnapshottable(record);
  const staging = join(snapshotRoot(ctx, opts.kind ?? "user"), `.staging-${process.pid}-${randomBytes(4).toString("hex")}`);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  try {
    const volumes = volumeCopies(ctx, record);
    const { pausedMs } = await pausedCopy(ctx, record, staging, { volumes });
    crashPoint("snapshot:captured");
    return { ...(await commit(ctx, record, staging, { ...opts, volumes })), pausedMs };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The part under pause: state, RAM, disk and `volumes` into `dir` (one
 * instant for all of them); the guest resumed whatever happens.
 */
export async function pausedCopy(
  ctx: EngineContext,
  record: VmRecord,
  dir: string,
  opts: { disk?: boolean; resume?: boolean; volumes?: readonly VolumeCopy[] } = {},
): Promise<{ pausedMs: number }> {
  const qmp = await QmpClient.connect(record.paths.qmpSocket, { timeoutMs: 5_000, label: record.name });
  let stoppedAt: number | undefined;
  let resumedAt: number | undefined;
  try {
    const ram = await ramMode(qmp, record, ctx.home);
    const { status } = await qmp.execute<{ status: string }>("query-status");
    const wasRunning = status === "running";
    await writeJsonAtomic(record.paths.capturing, { taker: currentProcess(), resume: wasRunning });
    const live = wasRunning && ram === "stream" && opts.resume !== false && (await ctx.store.readState(record.id)).accel === "kvm";
    try {
      if (wasRunning && !live) {
        await qmp.execute("stop");
        stoppedAt = performance.now();
      }
      crashPoint("snapshot:paused");
      const saved = await saveState(qmp, {
        socketPath: record.paths.migrateSocket,
        file: join(dir, snapshotFiles.state),
        ...(record.config.jail === undefined ? {} : { owner: record.config.jail }),
        ...(ram === "stream" ? { ramInStream: true } : {}),
        ...(live ? { liveForMs: liveCopyMs } : {}),
      });
      // Live: QEMU stopped the guest at the end, for `downtime` ms (or skiff did, when it took too long), and it
      // stays stopped until `cont` below.
      if (live) stoppedAt = saved.stoppedAt ?? performance.now() - (saved.downtimeMs ?? 0);
      await Promise.all([
        ram === "file" ? sparseCopy(ctx, ramPath(ctx.home, record.id), join(dir, snapshotFiles.mem)) : undefined,
        opts.disk === false ? undefined : sparseCopy(ctx, record.paths.overlay, join(dir, snapshotFiles.disk)),
        ...(opts.volumes ?? []).map((v) => sparseCopy(ctx, v.from, join(dir, v.layer.file))),
      ]);
    } finally {
      // After a migration QEMU's disks are inactive; `cont` takes them back. A hibernate ends QEMU instead.
      if (wasRunning && opts.resume !== false) {
        await qmp.execute("cont");
        resumedAt = performance.now();
      }
      await rm(record.paths.capturing, { force: true });
    }
  } finally {
    qmp.close();
  }
  return { pausedMs: stoppedAt === undefined ? 0 : (resumedAt ?? performance.now()) - stoppedAt };
}

/** cp keeps holes (SEEK_DATA), so an untouched page costs nothing on disk; Node's copyFile would fill them. */
async function sparseCopy(ctx: EngineContext, from: string, to: string): Promise<void> {
  await ctx.runner.run("cp", ["--sparse=always", "--reflink=auto", from, to], { check: true });
  await chmod(to, 0o600);
}

/** Name the staged snapshot by its content (a fork's at random), with its record, keys and initrd; rename it into place. */
async function commit(ctx: EngineContext, record: VmRecord, staging: string, opts: CaptureOptions & { volumes: readonly VolumeCopy[] }): Promise<StoredSnapshot> {
  const { paths, config } = record;
  const base = config.image?.basePath;
  if (base === undefined || config.image === undefined) throw new SkiffError("ERR_SKIFF_INTERNAL", `${record.name} has no image base`);
  const disk = join(staging, snapshotFiles.disk);
  // A restored VM's overlay sits on its snapshot's disk: fold that in, so every snapshot stands on the image alone.
  if (config.snapshot !== undefined) {
    await ctx.runner.run("qemu-img", ["rebase", "-q", "-f", "qcow2", "-F", "raw", "-b", base, disk], { check: true, debianPackage: "qemu-utils" });
  }
  await standAlone(ctx, staging, opts.volumes);
  // A boot snapshot counts the VMs that stand on it, so that it can go once it is stale and unused (boot-users.ts).
  if (opts.kind === "boot") await makeUsersDir(staging);
  const volumes = await Promise.all(opts.volumes.map(async (v) => ({ ...v.layer, bytes: await diskUsage(join(staging, v.layer.file)) })));
  for (const file of ["initrd", "sshKey", "sshPublicKey", "hostKey", "hostPublicKey", "knownHosts", "consoleLog"] as const) {
    const from = paths[file];
    if (existsSync(from)) await copyFile(from, join(staging, snapshotFiles[file]));
  }
  // A fork's snapshot is never looked up by its content (no other capture can be the same), and hashing it
  // (the RAM file read whole, holes included) was 0.6 s of a 2.8 s `fork -n 4` here: it is named at random.
  const id = opts.kind === "fork" ? randomBytes(32).toString("hex") : await contentId(staging, volumes.map((v) => v.file));
  const facts = await ctx.hostFacts();
  const kernelPath = config.kernel?.path ?? facts.vmlinuxPath;
  const target = join(snapshotRoot(ctx, opts.kind ?? "user"), id);
  const snapshot: StoredSnapshot = {
    dir: target,
    id,
    ...(opts.name === undefined ? {} : { name: opts.name }),
    kind: opts.kind ?? "user",
    createdAt: new Date().toISOString(),
    source: { id: record.id, name: record.name },
    spec: config.spec,
    image: { digest: config.image.digest, basePath: base },
    kernelPath,
    ...(config.kernel?.version ? { kernelVersion: config.kernel.version } : {}),
    versions: await hostVersions(facts.qemuBinary, kernelPath, ctx.cacheDir),
    sizes: {
      mem: await diskUsage(join(staging, snapshotFiles.mem)),
      state: (await stat(join(staging, snapshotFiles.state))).size,
      disk: await diskUsage(disk),
      ...(volumes.length === 0 ? {} : { volumes: volumes.reduce((sum, v) => sum + v.bytes, 0) }),
    },
    ...(volumes.length === 0 ? {} : { volumes }),
    ...(opts.bootKey === undefined ? {} : { bootKey: opts.bootKey }),
  };
  const { dir: _dir, ...stored } = snapshot;
  await writeSnapshotRecord(staging, stored);
  if (existsSync(target)) {
    await rm(staging, { recursive: true, force: true });
    return (await listSnapshots(ctx)).find((s) => s.id === id) ?? snapshot;
  }
  await rename(staging, target);
  return snapshot;
}

/** Pages the guest never touched (most of a young VM's RAM) are hashed as one marker byte, not 4 KiB of zeros. */
const page = 4096;
const zeroPage = Buffer.alloc(page);
const [tagZero, tagPage, tagTail] = [Buffer.from([0]), Buffer.from([1]), Buffer.from([2])];

/**
 * SHA-256 over the state, RAM (when it has a file), disk and volume layers, in that order: the snapshot's id.
 * A zero page counts as a marker, so the cost follows what the guest wrote,
 * not its memory size (hashing every byte of a 256 MiB RAM file took 1-2 s
 * of each fork here).
 */
async function contentId(dir: string, volumeFiles: readonly string[]): Promise<string> {
  const hash = createHash("sha256");
  for (const file of [snapshotFiles.state, snapshotFiles.mem, snapshotFiles.disk, ...volumeFiles]) {
    // No RAM file: the RAM is in the state (a fork's capture); the marker keeps that apart from an empty one.
    if (file === snapshotFiles.mem && !existsSync(join(dir, file))) {
      hash.update("in-state\0");
      continue;
    }
    for await (const chunk of createReadStream(join(dir, file), { highWaterMark: 1 << 20 })) {
      const buf = chunk as Buffer;
      for (let at = 0; at < buf.length; at += page) {
        const part = buf.subarray(at, Math.min(at + page, buf.length));
        // Tagged, so no two contents hash the same way: 0 a zero page, 1 a page, 2 a shorter tail with its length.
        if (part.length === page && part.equals(zeroPage)) hash.update(tagZero);
        else if (part.length === page) hash.update(tagPage).update(part);
        else hash.update(tagTail).update(String(part.length)).update(tagTail).update(part);
      }
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

/**
 * A capture killed while its guest was paused left the marker: resume the
 * guest (when it was running before) and drop the marker.
 */
export async function resumeAbandonedCapture(record: VmRecord): Promise<boolean> {
  const marker = await readJsonIfExists<{ taker: ProcessIdentity; resume: boolean }>(record.paths.capturing).catch(() => undefined);
  if (marker === undefined || identityAlive(marker.taker)) return false;
  if (marker.resume) {
    const qmp = await QmpClient.connect(record.paths.qmpSocket, { timeoutMs: 2_000, label: record.name }).catch(() => undefined);
    if (qmp !== undefined) {
      try {
        const { status } = await qmp.execute<{ status: string }>("query-status");
        if (status !== "running") await qmp.execute("cont");
      } finally {
        qmp.close();
      }
    }
  }
  await rm(record.paths.capturing, { force: true });
  return true;
}

/**
 * Starting a VM: boot it, or resume it from a hibernation, a boot snapshot
 * or a snapshot being restored; then wait until its guest answers and tell
 * it who it is. `skiff.vms.start` and `skiff.snapshots.restore` share it.
 * Every module behind booting is loaded here, when a VM first starts.
 */
import { stat } from "node:fs/promises";
import { SkiffError } from "../errors.js";
import type { AgentConnection } from "../guest/agent.js";
import type { GuestNetwork } from "../network/guest.js";
import type { ResumeSource } from "../snapshot/resume.js";
import type { VmRecord } from "../store/store.js";
import { crashPoint } from "../util/crash-point.js";
import { progress, type EngineContext } from "./context.js";
import { hardStop } from "./reconcile.js";
import { lockedVm } from "./vm-lock.js";

export interface StartOptions {
  /** Wait until the guest agent answers (default true). */
  waitReady?: boolean;
  timeoutMs?: number;
  /** A hibernated VM: boot from its disk instead of resuming its saved memory (E2B's onResume: 'reboot'). */
  cold?: boolean;
}

/**
 * Load what a start loads (its modules are imported on first use), without
 * starting anything: `run` calls it before its create, so that the loading
 * fills create's waits (qemu-img, the disk) instead of following them
 * (~35 ms of a `run` from the boot snapshot). Never rejects: a module that
 * fails to load fails the start that needs it.
 */
export async function preloadStart(): Promise<void> {
  await Promise.all([
    import("../snapshot/hibernate.js"),
    import("./vm-network.js"),
    import("./launch.js"),
    import("./volumes.js"),
    import("./ready.js"),
    import("../snapshot/boot.js"),
    import("../snapshot/restore.js"),
    import("../snapshot/identity.js"),
  ]).catch(() => undefined);
}

/** How long a boot may take before it counts as failed; TCG on a loaded host is slow. */
const defaultBootTimeoutMs = Number(process.env.SKIFF_BOOT_TIMEOUT_MS ?? 120_000);

/**
 * Start `record` under its lifecycle lock (a running VM whose guest is
 * paused runs again; a restarting one is left to its supervisor);
 * `connect` reaches a running guest (its /etc/hosts is written through it).
 */
export async function startVm(
  ctx: EngineContext,
  record: VmRecord,
  opts: StartOptions & {
    resume?: ResumeSource;
    /** The caller rewrites this VM's /etc/hosts and its peers' once it is done (fork, with all its clones running). */
    hostsLater?: boolean;
    /**
     * A resumed guest does not run a command once to warm its translation cache for the first one to come
     * (GuestIdentity.warm): fork's clones, restored side by side, would slow each other's start.
     */
    coldCache?: boolean;
  },
  connect: (name: string) => Promise<AgentConnection>,
): Promise<void> {
  const t0 = Date.now();
  const hibernation = opts.resume === undefined ? await import("../snapshot/hibernate.js") : undefined;
  const facts = await ctx.hostFacts();
  const [network, { spawnQemu }, volumes, { waitBooted }] = await Promise.all([import("./vm-network.js"), import("./launch.js"), import("./volumes.js"), import("./ready.js")]);
  let hosts = "";
  let resume: ResumeSource | undefined;
  let consoleFrom = 0;
  let guest: GuestNetwork | undefined;
  let bootKey: string | undefined;
  let telling: Promise<void> | undefined;
  const identity = await lockedVm(ctx, record, "start", async (state, status) => {
    if (status.state === "running") {
      // A running VM whose guest is paused (skiff pause, a full disk) runs again.
      await (await import("../snapshot/clock.js")).unpauseVm(ctx, record);
      return undefined;
    }
    // Restarting: its supervisor brings QEMU back by itself; a second QEMU must never start.
    if (status.state === "restarting") return undefined;
    // A VM made before jails (or by a skiff without root) gets its jail user now.
    record.config = await ctx.store.ensureJailIds(record.id);
    resume = opts.resume ?? (await hibernation?.hibernatedSource(ctx, record, opts.cold === true));
    // A VM that has never run starts from its combination's boot snapshot, or makes it (src/snapshot/boot.ts);
    // one that `run` made stands on that snapshot already (create.ts: startNow).
    if (resume === undefined && opts.cold !== true && state.startedAt === undefined) {
      const [boot, { snapshotSource }] = await Promise.all([import("../snapshot/boot.js"), import("../snapshot/restore.js")]);
      const adopted = record.config.snapshot === undefined ? undefined : await boot.bootSnapshotById(ctx, record.config.snapshot.id);
      if (adopted !== undefined) resume = snapshotSource(adopted);
      else if (record.config.snapshot === undefined) {
        const { key, snapshot } = await boot.bootSnapshotFor(ctx, record, facts);
        if (snapshot !== undefined && (await boot.adoptBootSnapshot(ctx, record, snapshot))) resume = snapshotSource(snapshot);
        else bootKey = key;
      }
    }
    progress(ctx, record.name, "booting", `${resume === undefined ? "booting" : "resuming"} ${record.name} (${facts.accel.accel})`, t0);
    // Loaded while QEMU starts: the guest's identity goes out the moment it runs.
    const identityModule = resume === undefined ? undefined : import("../snapshot/identity.js");
    identityModule?.catch(() => {});
    const networking = await network.prepareVmNetworking(ctx, record);
    hosts = networking.guest.hosts;
    guest = networking.guest;
    // Where the resumed guest's console starts: the captured guest's log is copied in before it (resume.ts).
    consoleFrom = resume === undefined ? 0 : await sizeOf(resume.consoleLog ?? record.paths.consoleLog);
    // Under the volumes lock from the check until QEMU holds the disks: two VMs never attach one volume.
    const identity = await volumes.withVolumesLocked(ctx, record.config.spec.mounts, `start ${record.name}`, async () =>
      spawnQemu({
        record,
        home: ctx.home,
        facts,
        runner: ctx.runner,
        cacheDir: ctx.cacheDir,
        networking,
        mounts: await volumes.checkVolumesFree(ctx, record),
        ...(resume === undefined ? {} : { resume }),
      }),
    );
    crashPoint("start:spawned");
    // The guest runs: its identity goes out now, while its state is written (an fsync, ~10 ms), and is awaited below.
    const resumed = guest;
    telling = identityModule?.then(({ sendGuestIdentity }) => sendGuestIdentity(record, ctx.home, resumed, { warm: opts.coldCache !== true }));
    telling?.catch(() => {});
    await ctx.store.updateState(record.id, {
      qemu: identity,
      startedAt: new Date().toISOString(),
      accel: facts.accel.accel,
      exit: undefined,
      forwards: undefined,
    });
    return identity;
  });
  if (identity !== undefined && resume !== undefined) {
    // A resumed guest is up already; it learns who it is now (name, addresses, clock, a fresh random pool).
    try {
      await telling;
      await hibernation?.resumed(ctx, record);
    } catch (err) {
      const { resumeFailureFacts } = await import("../snapshot/resume.js");
      const facts = await resumeFailureFacts(record.paths, identity, consoleFrom);
      await hardStop(ctx, record, "resume-failed");
      throw facts === undefined ? err : withFacts(err, facts);
    }
    if (opts.hostsLater !== true) await syncHostsOrWarn(ctx, record, hosts, connect, t0);
    progress(ctx, record.name, "ready", `${record.name} is ready (resumed from ${resume.what})`, t0);
  } else if (identity !== undefined && opts.waitReady !== false) {
    try {
      await waitBooted({ record, identity, home: ctx.home, timeoutMs: opts.timeoutMs ?? defaultBootTimeoutMs });
    } catch (err) {
      // Never leave a VM half-booted behind a failed start.
      await hardStop(ctx, record, "boot-failed");
      throw err;
    }
    await syncHostsOrWarn(ctx, record, hosts, connect, t0);
    if (bootKey !== undefined) await bootSnapshot(ctx, record, bootKey, t0);
    progress(ctx, record.name, "ready", `${record.name} is ready`, t0);
  }
}

async function syncHostsOrWarn(ctx: EngineContext, record: VmRecord, given: string, connect: (name: string) => Promise<AgentConnection>, t0: number): Promise<void> {
  const { syncOwnHosts, warnStaleHosts } = await import("./vm-network.js");
  const why = await syncOwnHosts(ctx, record, given, (vm) => connect(vm.name));
  if (why !== undefined) warnStaleHosts(ctx, record.name, why, t0);
}

/**
 * The first cold boot of its combination: snapshot the ready guest, so the
 * next VM like it starts from here. Best effort: a failure is a warning.
 */
async function bootSnapshot(ctx: EngineContext, record: VmRecord, key: string, t0: number): Promise<void> {
  const [{ captureVm }, { saveBootSnapshotOnce, pruneStaleBoot }] = await Promise.all([import("../snapshot/capture.js"), import("../snapshot/boot.js")]);
  const why = (err: unknown) => (err instanceof Error ? err.message : String(err));
  let saved = false;
  try {
    saved = await lockedVm(ctx, record, "boot snapshot", async (_state, status) => {
      if (status.qemu === undefined) return false;
      return saveBootSnapshotOnce(ctx, key, async () => {
        progress(ctx, record.name, "snapshot", `saving a boot snapshot of ${record.config.spec.image} (the next VM like it resumes from it)`, t0);
        await captureVm(ctx, record, { kind: "boot", bootKey: key });
      });
    });
  } catch (err) {
    progress(ctx, record.name, "warning", `no boot snapshot saved: ${why(err)}`, t0);
  }
  // A new one is made when skiff, QEMU or the kernel changed: the ones they made go once nothing stands on them
  // (outside the VM's lock: it is the cache's business, not the VM's).
  if (saved) await pruneStaleBoot(ctx).catch((err: unknown) => progress(ctx, record.name, "warning", `old boot snapshots not removed: ${why(err)}`, t0));
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

/** `err` with what the resumed VM left behind (resumeFailureFacts) added to its message. */
function withFacts(err: unknown, facts: string): unknown {
  if (!(err instanceof SkiffError)) return err;
  return new SkiffError(err.code, `${err.message}; ${facts}`, {
    ...(err.hint === undefined ? {} : { hint: err.hint }),
    ...(err.place === undefined ? {} : { place: err.place }),
    details: { ...err.details, resumeFailure: facts },
    cause: err,
  });
}

/**
 * `skiff.snapshots`: a running VM's memory, devices and disk saved
 * (create), and VMs made from them (restore, fork), over one skiff; the
 * records' verbs (list, inspect, remove, gc, prune) are
 * src/snapshot/service.ts, capturing is src/snapshot/capture.ts and
 * restoring src/snapshot/restore.ts. Skiff's flat `snapshot`, `restore`,
 * `fork`, `listSnapshots`, … are these. Each verb loads its modules when
 * first called.
 */
import { existsSync } from "node:fs";
import { SkiffError } from "../../errors.js";
import type { RestoreOptions } from "../../snapshot/restore.js";
import type { SharedRam } from "../../snapshot/shared-ram.js";
import type { SnapshotInfo } from "../../snapshot/service.js";
import { homeNoSpace, progress, type EngineContext } from "../context.js";
import type { VmInfo } from "../info.js";
import { onRunningVm } from "../vm-lock.js";
import type { VmService } from "./vms.js";

export interface SnapshotCreateOptions {
  /** A name to find it by (unique among snapshots). */
  name?: string;
}

export interface ForkOptions {
  /** How many clones (default 1). */
  count?: number;
  /** Their names: PREFIX-1, PREFIX-2, … (default NAME-fork-N). */
  prefix?: string;
  /** The clones' labels (default none: a restore does not take the source's). */
  labels?: Record<string, string>;
}

export class SnapshotService {
  readonly #ctx: EngineContext;
  readonly #vms: VmService;

  constructor(ctx: EngineContext, vms: VmService) {
    this.#ctx = ctx;
    this.#vms = vms;
  }

  /**
   * Snapshot a running VM: memory, device state and root disk, taken with
   * the guest paused only for the copy; it runs on (src/snapshot/capture.ts).
   */
  async create(name: string, opts: SnapshotCreateOptions = {}): Promise<SnapshotInfo> {
    const t0 = Date.now();
    const ctx = this.#ctx;
    const record = await ctx.store.get(name);
    const [{ captureVm }, { toSnapshotInfo }, { checkSnapshotName }] = await Promise.all([
      import("../../snapshot/capture.js"),
      import("../../snapshot/service.js"),
      import("../../snapshot/names.js"),
    ]);
    if (opts.name !== undefined) await checkSnapshotName(ctx, opts.name);
    const snap = await onRunningVm(ctx, record, "snapshot", async () => {
      progress(ctx, record.name, "snapshot", `taking a snapshot of ${record.name}`, t0);
      return captureVm(ctx, record, { ...(opts.name === undefined ? {} : { name: opts.name }), kind: "user" }).catch((err: unknown) => {
        throw homeNoSpace(err, ctx.home, `snapshotting ${record.name}`);
      });
    });
    progress(ctx, record.name, "snapshot", `snapshot ${snap.id.slice(0, 12)} of ${record.name} taken (paused ${Math.round(snap.pausedMs)} ms)`, t0);
    return { ...toSnapshotInfo(snap, []), pausedMs: snap.pausedMs };
  }

  /** A new VM from a snapshot, running where the snapshot left off, with a name and addresses of its own. */
  async restore(ref: string, opts: RestoreOptions = {}): Promise<VmInfo> {
    return this.#restore(ref, opts);
  }

  /**
   * `fork`: a clone, which maps `shared`, a sealed copy of the snapshot's RAM, instead of copying it, and whose
   * /etc/hosts and its peers' are left to the fork, which rewrites them once all its clones run.
   */
  async #restore(ref: string, opts: RestoreOptions, fork?: { shared: SharedRam | undefined }): Promise<VmInfo> {
    const shared = fork?.shared;
    const t0 = Date.now();
    const ctx = this.#ctx;
    const [{ findSnapshot }, { checkRestorable, createFromSnapshot, snapshotSource }, { startVm }, { reconcile }, { refreshPeersOrWarn }] = await Promise.all([
      import("../../snapshot/store.js"),
      import("../../snapshot/restore.js"),
      import("../start.js"),
      import("../reconcile.js"),
      import("../vm-network.js"),
    ]);
    const snapshot = await findSnapshot(ctx, ref);
    await checkRestorable(ctx, snapshot);
    await reconcile(ctx);
    const record = await createFromSnapshot(ctx, snapshot, opts, t0).catch((err: unknown) => {
      throw homeNoSpace(err, ctx.home, `restoring ${ref}`);
    });
    const connect = (vm: string) => this.#vms.connect(vm);
    try {
      await startVm(ctx, record, { resume: { ...snapshotSource(snapshot), ...(shared === undefined ? {} : { sharedRam: shared }) }, hostsLater: fork !== undefined, coldCache: fork !== undefined }, connect);
    } catch (err) {
      // Never a half-made VM: a restore that did not come up leaves nothing.
      await this.#vms.remove(record.name, { force: true }).catch(() => undefined);
      throw homeNoSpace(err, ctx.home, `restoring ${ref}`);
    }
    if (fork === undefined) await refreshPeersOrWarn(ctx, record.config.spec, connect, t0);
    return this.#vms.info(record);
  }

  /** N live clones of a running VM: one snapshot, then N restores (in parallel). Writes in one are nobody else's. */
  async fork(name: string, opts: ForkOptions = {}): Promise<VmInfo[]> {
    const t0 = Date.now();
    const count = opts.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 64) {
      throw new SkiffError("ERR_SKIFF_USAGE", `count takes 1 to 64 clones, not ${count}`, { place: "count", hint: "e.g. 4" });
    }
    const ctx = this.#ctx;
    const record = await ctx.store.get(name);
    const prefix = opts.prefix ?? `${record.name}-fork`;
    const names = Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
    for (const n of names) {
      if ((await ctx.store.lookup(n)) !== undefined) {
        const { nameTaken } = await import("../../snapshot/restore.js");
        throw nameTaken(n);
      }
    }
    const { captureVm } = await import("../../snapshot/capture.js");
    const snap = await onRunningVm(ctx, record, "fork", async () => captureVm(ctx, record, { kind: "fork" }));
    const labels = opts.labels === undefined ? {} : { labels: opts.labels };
    // Two clones or more map one sealed copy of the snapshot's RAM, copy-on-write, instead of a copy each
    // (shared-ram.ts). A single clone shares with nobody: it gets a RAM file of its own, like a restore, and keeps
    // what that gives (cheap snapshots, freed memory given back).
    const [{ sharedRamFrom }, { snapshotFile }] = await Promise.all([import("../../snapshot/shared-ram.js"), import("../../snapshot/store.js")]);
    const mem = snapshotFile(snap, "mem");
    const shared = count > 1 && existsSync(mem) ? sharedRamFrom(mem, `snapshot ${snap.id.slice(0, 12)}`) : undefined;
    const made = await Promise.allSettled(names.map((n) => this.#restore(snap.id, { name: n, ...labels }, { shared }))).finally(() => shared?.close());
    const failed = made.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) {
      for (const n of names) await this.#vms.remove(n, { force: true }).catch(() => undefined);
      throw failed.reason;
    }
    // Once, with every clone running: a refresh per clone as it came up reached siblings still being
    // restored, their identity (which carries /etc/hosts too) not yet told, and failed or was overwritten.
    const { refreshPeersOrWarn } = await import("../vm-network.js");
    await refreshPeersOrWarn(ctx, record.config.spec, (vm) => this.#vms.connect(vm), t0, { includeChanged: true });
    return made.map((r) => (r as PromiseFulfilledResult<VmInfo>).value);
  }

  /** Every snapshot, or those of one VM. */
  async list(vm?: string): Promise<SnapshotInfo[]> {
    return (await import("../../snapshot/service.js")).listSnapshotInfos(this.#ctx, vm);
  }

  async inspect(ref: string): Promise<SnapshotInfo> {
    return (await import("../../snapshot/service.js")).inspectSnapshot(this.#ctx, ref);
  }

  /** Remove a snapshot; one VMs stand on only with `force`, which removes them too. */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<SnapshotInfo> {
    const { removeSnapshot } = await import("../../snapshot/service.js");
    return removeSnapshot(this.#ctx, ref, { ...opts, removeVm: (n) => this.#vms.remove(n, { force: true }) });
  }

  /** Keep a VM's newest `keep` snapshots, remove the older ones. */
  async gc(vm: string, keep: number): Promise<SnapshotInfo[]> {
    return (await import("../../snapshot/service.js")).gcSnapshots(this.#ctx, vm, keep);
  }

  /** Remove snapshots no VM stands on: unnamed ones (fork's) and boot snapshots this host can no longer restore; all with `all`. */
  async prune(opts: { all?: boolean } = {}): Promise<SnapshotInfo[]> {
    return (await import("../../snapshot/service.js")).pruneSnapshots(this.#ctx, opts);
  }
}

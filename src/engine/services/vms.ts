/**
 * `skiff.vms`: a VM's lifecycle over one skiff (create, start, stop,
 * restart, run, pause, kill, remove, list, inspect) and reaching a running
 * one (exec, cp, connect, proxy, port forwards). Skiff's flat verbs
 * (`skiff.create`, `skiff.start`, …) are these. Booting lives in
 * ../start.ts, creating in ../create.ts, reconciling in ../reconcile.ts.
 *
 * What boots, creates or reaches a VM (QEMU's command line, the jail,
 * networks, volumes, SSH) is imported by the verb that uses it, when first
 * called: listing and inspecting read records and the process table only,
 * and a `skiff ps` must not load what a `skiff run` needs
 * (docs/benchmarks.md, "CLI start").
 */
import { existsSync } from "node:fs";
import { SkiffError } from "../../errors.js";
import type { AgentConnection, CopyReport, RunOptions } from "../../guest/agent.js";
import { ProcTable } from "../../process/procs.js";
import type { RestoreOptions } from "../../snapshot/restore.js";
import type { MachineSpec, PortForward } from "../../spec/machine.js";
import { isBroken, vmNotFound, type VmRecord } from "../../store/store.js";
import { crashPoint } from "../../util/crash-point.js";
import { brokenInfo, removeBroken, type BrokenVmInfo } from "../broken.js";
import { homeNoSpace, notRunning, progress, type EngineContext } from "../context.js";
import type { CreateOptions, StandOn } from "../create.js";
import { toVmInfo, type VmInfo } from "../info.js";
import type { CopyOnceOptions, ExecOnceResult } from "../oneshot.js";
import { guestPaused, readyForPowerdown, vmPaused } from "../pause.js";
import type { ForwardInfo } from "../ports.js";
import type { SshStream } from "../proxy.js";
import type { SshEndpoint } from "../agent-target.js";
import { recordExit, reconcile, reconcileAndLook, removeVm, settleEnded } from "../reconcile.js";
import type { RunVmOptions, RunVmResult } from "../run.js";
import type { StartOptions } from "../start.js";
import { observeStatus, qemuRuns } from "../status.js";
import { releaseSupervisor, signalQemu, stopQemu } from "../stop.js";
import { lockedVm, onRunningVm } from "../vm-lock.js";

export class VmService {
  readonly #ctx: EngineContext;
  readonly #restore: (ref: string, opts: RestoreOptions) => Promise<VmInfo>;

  /** `restore`: the snapshot service's (a `run` from a snapshot restores it). */
  constructor(ctx: EngineContext, restore: (ref: string, opts: RestoreOptions) => Promise<VmInfo>) {
    this.#ctx = ctx;
    this.#restore = restore;
  }

  async create(input: CreateOptions): Promise<VmInfo> {
    return this.#create(input, {});
  }

  /** create(); `startNow` when the VM starts right after (run): it stands on its boot snapshot from the start (create.ts). */
  async #create(input: CreateOptions, how: { startNow?: boolean }): Promise<VmInfo> {
    const t0 = Date.now();
    const [{ checkCreateOptions }, { createVm }] = await Promise.all([import("../create-options.js"), import("../create.js")]);
    // Checked here, the library's door: callers in plain JavaScript get an error for a key skiff does not know.
    const opts = checkCreateOptions(input);
    await reconcile(this.#ctx);
    const standOn: StandOn = async (made, facts) => {
      const boot = await import("../../snapshot/boot.js");
      const { snapshot } = await boot.bootSnapshotFor(this.#ctx, made, facts);
      return snapshot !== undefined && (await boot.adoptBootSnapshot(this.#ctx, made, snapshot));
    };
    const record = await createVm(this.#ctx, opts, t0, how.startNow === true ? { standOn } : {}).catch((err: unknown) => {
      throw homeNoSpace(err, this.#ctx.home, `creating VM ${opts.name ?? ""}`.trim());
    });
    await this.#refreshPeers(record.config.spec, t0);
    return this.info(record);
  }

  /** Running VMs that share a network with `changed` learn its name (or forget it). */
  async #refreshPeers(changed: MachineSpec, t0: number): Promise<void> {
    const { refreshPeersOrWarn } = await import("../vm-network.js");
    await refreshPeersOrWarn(this.#ctx, changed, (vm) => this.connect(vm), t0);
  }

  async start(name: string, opts: StartOptions = {}): Promise<VmInfo> {
    await reconcile(this.#ctx);
    return this.info(await this.#start(name, opts));
  }

  /** start() without the reconcile before it: `run` starts the VM its create made a moment ago, after create's reconcile. */
  async #start(name: string, opts: StartOptions): Promise<VmRecord> {
    const record = await this.#ctx.store.get(name);
    const { startVm } = await import("../start.js");
    await startVm(this.#ctx, record, opts, (vm) => this.connect(vm)).catch((err: unknown) => {
      throw homeNoSpace(err, this.#ctx.home, `starting ${record.name}`);
    });
    return record;
  }

  async stop(name: string, opts: { timeoutMs?: number; hibernate?: boolean } = {}): Promise<VmInfo> {
    const t0 = Date.now();
    const ctx = this.#ctx;
    const record = await ctx.store.get(name);
    await lockedVm(ctx, record, "stop", async (_state, observed) => {
      // A restart policy's supervisor is told first (this end is wanted), and may have started QEMU again just before.
      const status = (await releaseSupervisor(record)) ? await observeStatus(record, await ctx.store.readState(record.id)) : observed;
      if (status.state === "restarting") {
        await recordExit(ctx, record, { reason: "stopped" });
        return;
      }
      // No QEMU: a start or stop killed half-way may have left its end unrecorded, or its cgroup and egress rules.
      if (status.qemu === undefined) {
        if (opts.hibernate === true) throw notRunning(record.name);
        return settleEnded(ctx, record);
      }
      if (opts.hibernate === true) {
        progress(ctx, record.name, "stopping", `hibernating ${record.name}`, t0);
        const { hibernateVm } = await import("../../snapshot/hibernate.js");
        await hibernateVm(ctx, record, status.qemu).catch((err: unknown) => {
          throw homeNoSpace(err, ctx.home, `hibernating ${record.name}`);
        });
        await recordExit(ctx, record, { reason: "hibernated" });
        progress(ctx, record.name, "stopped", `${record.name} hibernated`, t0);
        return;
      }
      progress(ctx, record.name, "stopping", `stopping ${record.name}`, t0);
      // A paused guest cannot power off; one that a full disk keeps paused gets signals straight away.
      const powerdown = await readyForPowerdown(record);
      const step = await stopQemu({
        identity: status.qemu,
        qmpSocket: record.paths.qmpSocket,
        timeoutMs: powerdown ? (opts.timeoutMs ?? 10_000) : 0,
        onStep: (s) => progress(ctx, record.name, "stopping", `stopping ${record.name}: ${s}`, t0),
      });
      crashPoint("stop:ended");
      await recordExit(ctx, record, { reason: step === "powerdown" ? "stopped" : `stopped (${step})` });
      progress(ctx, record.name, "stopped", `${record.name} stopped (${step})`, t0);
    });
    if (record.config.spec.autoRemove && opts.hibernate !== true) {
      await this.remove(name, { force: true });
      return { ...(await this.info(record)), state: "stopped" };
    }
    return this.info(record);
  }

  /**
   * `docker run`: create (or restore `run.from`), start, run the main
   * command; in the foreground wait for it and stop (or, with autoRemove,
   * remove) the VM; detached, leave it running (src/engine/run.ts).
   */
  async run(options: CreateOptions, run: RunVmOptions = {}): Promise<RunVmResult> {
    const [{ runVm }, { preloadStart }] = await Promise.all([import("../run.js"), import("../start.js")]);
    void preloadStart();
    return runVm(
      {
        create: (o) => this.#create(o, { startNow: run.cold !== true }),
        restore: this.#restore,
        start: (n, o) => this.#start(n, o),
        stop: (n, o) => this.stop(n, o),
        remove: (n, o) => this.remove(n, o),
        connect: (n) => this.connect(n),
        detach: (n) => this.detach(n),
      },
      options,
      run,
    );
  }

  /** Stop (the guest gets `stopTimeoutMs`, as `stop -t`) and start again (booting gets the usual deadline). */
  async restart(name: string, opts: { stopTimeoutMs?: number } & StartOptions = {}): Promise<VmInfo> {
    const record = await this.#ctx.store.get(name);
    if (record.config.spec.autoRemove) {
      throw new SkiffError("ERR_SKIFF_USAGE", `${record.name} is removed when it stops (autoRemove); restarting would remove it`, { place: record.name });
    }
    await this.stop(name, opts.stopTimeoutMs === undefined ? {} : { timeoutMs: opts.stopTimeoutMs });
    const { stopTimeoutMs: _stop, ...start } = opts;
    return this.start(name, start);
  }

  /** Stop the guest's CPUs (QMP `stop`): it keeps its memory and devices, and runs on after `unpause` or `start`. */
  async pause(name: string): Promise<VmInfo> {
    const record = await this.#ctx.store.get(name);
    await onRunningVm(this.#ctx, record, "pause", async () => (await import("../../snapshot/clock.js")).pauseVm(this.#ctx, record));
    return this.info(record);
  }

  /**
   * Let a paused guest run again (QMP `cont`), its clock set after a long
   * pause; a running one is left alone. ERR_SKIFF_NO_SPACE when its disk is still full.
   */
  async unpause(name: string): Promise<VmInfo> {
    const record = await this.#ctx.store.get(name);
    await onRunningVm(this.#ctx, record, "unpause", async () => (await import("../../snapshot/clock.js")).unpauseVm(this.#ctx, record));
    return this.info(record);
  }

  /** Send a signal to the VM's QEMU process (default SIGKILL: pull the plug). */
  async kill(name: string, opts: { signal?: number } = {}): Promise<VmInfo> {
    const record = await this.#ctx.store.get(name);
    const sig = opts.signal ?? 9;
    await onRunningVm(this.#ctx, record, "kill", async (qemu) => {
      // As `docker kill`: a VM killed on purpose is not restarted by its policy.
      await releaseSupervisor(record);
      if (await signalQemu(qemu, sig)) await recordExit(this.#ctx, record, { reason: "killed", signal: String(sig) });
    });
    return this.info(record);
  }

  /** Remove a VM and every trace of it; a running VM only with force. */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const t0 = Date.now();
    const ctx = this.#ctx;
    // A removal killed half-way (its directory already trash) is finished, whether or not the name is still there.
    await ctx.store.gc();
    const found = await ctx.store.lookup(name);
    if (found === undefined) throw vmNotFound(name);
    if (isBroken(found)) {
      await removeBroken(ctx, found, opts);
      progress(ctx, found.name ?? found.id, "removed", `${found.name ?? found.id} removed`, t0);
      if (found.config !== undefined) await this.#refreshPeers(found.config.spec, t0);
      return;
    }
    const record = found;
    await lockedVm(ctx, record, "remove", async (_state, status) => {
      if (status.state === "running" && opts.force !== true) {
        throw new SkiffError("ERR_SKIFF_VM_RUNNING", `${record.name} is running`, {
          hint: `stop it first (\`skiff stop ${record.name}\`) or use \`skiff rm -f ${record.name}\``,
          place: record.name,
        });
      }
      await removeVm(ctx, record);
    });
    progress(ctx, record.name, "removed", `${record.name} removed`, t0);
    await this.#refreshPeers(record.config.spec, t0);
  }

  async list(opts: { all?: boolean } = {}): Promise<VmInfo[]> {
    return (await this.listWithBroken(opts)).vms;
  }

  /**
   * list() and listBroken() at once, as `ps` shows them: from the records
   * and the process table that reconcile has just read, when it changed
   * nothing (most of what ps of many VMs spends is reading them).
   */
  async listWithBroken(opts: { all?: boolean } = {}): Promise<{ vms: VmInfo[]; broken: BrokenVmInfo[] }> {
    const { seen } = await reconcileAndLook(this.#ctx);
    // One look at the process table for every VM listed.
    const table = seen?.table ?? new ProcTable();
    const { vms, broken } = seen ?? (await this.#ctx.store.scan());
    const infos = await Promise.all(vms.filter((vm) => vm.complete).map((r) => this.info(r, table)));
    return {
      vms: opts.all === true ? infos : infos.filter((i) => qemuRuns(i.state) || i.state === "restarting"),
      broken: broken.map((b) => brokenInfo(b, table)),
    };
  }

  /** VMs whose records fail their check (`ps -a` shows them as broken; `rm -f` is the one verb they take). */
  async listBroken(): Promise<BrokenVmInfo[]> {
    return (await this.#ctx.store.scan()).broken.map((b) => brokenInfo(b));
  }

  async inspect(name: string): Promise<VmInfo> {
    await reconcile(this.#ctx);
    return this.info(await this.#ctx.store.get(name));
  }

  async info(record: VmRecord, table = new ProcTable()): Promise<VmInfo> {
    const state = existsSync(record.paths.dir) ? await this.#ctx.store.readState(record.id) : {};
    const status = await observeStatus(record, state, table);
    return toVmInfo(record, state, status, status.state === "running" ? await guestPaused(record) : undefined);
  }

  /** Run one command in a running VM and collect its output (`connect()` for many on one connection). */
  async exec(name: string, argv: string[], opts: RunOptions = {}): Promise<ExecOnceResult> {
    const { execOnce } = await import("../oneshot.js");
    return execOnce((vm) => this.connect(vm), name, argv, opts);
  }

  /** `docker cp`: one side `NAME:/absolute/path`; out of a VM, the report says what was not copied as it was. */
  async cp(src: string, dst: string, opts: CopyOnceOptions = {}): Promise<CopyReport | undefined> {
    const { copyOnce } = await import("../oneshot.js");
    return copyOnce((vm) => this.connect(vm), src, dst, opts);
  }

  /** An SSH connection to the running VM's guest agent. */
  async connect(name: string, opts: { timeoutMs?: number } = {}): Promise<AgentConnection> {
    const record = await this.#ctx.store.get(name);
    // Whether the VM runs (/proc) and its guest is not paused (a QMP round trip) is asked while the
    // connection is opened, not before it: the two took ~40 ms of every one-shot `skiff exec`. The
    // connection is only handed out once both say yes; otherwise it is given up (a paused guest never
    // answers its greeting) and their error is the one thrown, not the connection's. A cloud image's
    // sshd is reached over TCP, which a paused guest's QEMU still accepts: asked first, as before.
    const cloud = record.config.spec.boot?.kind === "cloud";
    const given = new AbortController();
    const checked = (async () => {
      const status = await observeStatus(record, await this.#ctx.store.readState(record.id));
      if (status.state !== "running") throw notRunning(record.name);
      const paused = await guestPaused(record);
      if (paused !== undefined) throw vmPaused(record.name, paused);
    })();
    checked.catch((err: unknown) => given.abort(err));
    const connecting = (async () => {
      const modules = Promise.all([import("../../guest/agent.js"), import("../agent-target.js")]);
      modules.catch(() => {});
      if (cloud) await checked;
      const [{ connectAgent }, { connectionOptions }] = await modules;
      return connectAgent({
        ...(await connectionOptions(record, this.#ctx.home)),
        // A cloud image's sshd can be restarting (cloud-init, a slow TCG guest): give it longer.
        timeoutMs: opts.timeoutMs ?? (cloud ? 60_000 : 15_000),
        signal: given.signal,
      });
    })();
    const [check, conn] = await Promise.allSettled([checked, connecting]);
    if (check.status === "rejected") {
      if (conn.status === "fulfilled") await conn.value.close().catch(() => undefined);
      throw check.reason;
    }
    if (conn.status === "rejected") throw conn.reason;
    return conn.value;
  }

  /** A cloud image's sshd on its loopback forward (undefined for skiff's own guests: their SSH is the agent channel). */
  async sshEndpoint(name: string): Promise<SshEndpoint | undefined> {
    const [record, { sshEndpoint }] = await Promise.all([this.#ctx.store.get(name), import("../agent-target.js")]);
    return sshEndpoint(record.config.spec);
  }

  /** A raw byte stream to the running VM's SSH server (`skiff proxy`, ssh's ProxyCommand); release it when done. */
  async proxy(name: string): Promise<SshStream> {
    const info = await this.inspect(name);
    if (info.state === "paused") throw vmPaused(name, info.pauseReason ?? "user");
    if (info.state !== "running") {
      throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, { hint: `skiff start ${name}`, place: name });
    }
    const { openSshStream } = await import("../proxy.js");
    return openSshStream(await this.#ctx.store.get(info.id), this.#ctx.home);
  }

  /** A VM's port forwards (host -> guest): those it was made with and those added while it runs. */
  async listForwards(name: string): Promise<ForwardInfo[]> {
    return (await import("../ports.js")).listForwards(this.#ctx, name);
  }

  /** Add a port forward to a running VM, or `remove` one added so; returns its forwards after. */
  async changeForward(name: string, forward: PortForward, opts: { remove?: boolean } = {}): Promise<ForwardInfo[]> {
    return (await import("../ports.js")).changeForward(this.#ctx, name, forward, opts);
  }

  /** Untie a VM from the process that created it attached (CreateOptions.attach): it outlives that process now. */
  async detach(name: string): Promise<void> {
    const record = await this.#ctx.store.get(name);
    await this.#ctx.store.updateState(record.id, { owner: undefined });
  }

  /** Set (a string) or remove (null) labels of an existing VM, running or not; the others are kept. */
  async setLabels(name: string, changes: Record<string, string | null>): Promise<VmInfo> {
    for (const [key, value] of Object.entries(changes)) {
      if (key === "" || (value !== null && typeof value !== "string")) {
        throw new SkiffError("ERR_SKIFF_USAGE", `label ${JSON.stringify(key)}: a non-empty key with a string value (null removes it)`, { place: "labels" });
      }
    }
    const record = await this.#ctx.store.get(name);
    await lockedVm(this.#ctx, record, "label", async () => {
      record.config = await this.#ctx.store.setLabels(record.id, changes);
    });
    return this.info(record);
  }
}

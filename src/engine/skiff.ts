/**
 * The typed library behind every front end: `new Skiff()` and the lifecycle
 * verbs. It never prints; it returns values, throws SkiffError and emits
 * progress events.
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { SkiffError } from "../errors.js";
import { cloudSshUser, fetchCloudImage, isCloudRef } from "../image/cloud.js";
import type { TcpTarget } from "../guest/agent-session.js";
import { connectAgent, waitForAgent, type AgentConnection } from "../guest/agent.js";
import { resolveImage } from "../image/resolve.js";
import type { ImageRuntimeConfig } from "../image/oci/types.js";
import { currentProcess, identityAlive } from "../process/pid.js";
import { defaultRunner, type Runner } from "../process/runner.js";
import { defaults, type MachineSpec, type NetworkSpec } from "../spec/machine.js";
import { skiffPaths } from "../store/paths.js";
import { VmStore, vmLockName, type CreateExtra, type VmRecord } from "../store/store.js";
import { withLock } from "../store/lock.js";
import { uniqueRandomName, validateName } from "../util/names.js";
import type { Phase, SkiffEvents } from "./events.js";
import { gatherHostFacts, type HostFacts } from "./host.js";
import { generateVmKeys, readHostPublicKey } from "./keys.js";
import { freeLoopbackPort, prepareCloudDisk, readUserData } from "./cloud-vm.js";
import { bootFailureReason, clearRuntimeFiles, spawnQemu } from "./launch.js";
import { observeStatus, type ObservedStatus, type RunState } from "./status.js";
import type { ExitRecord, VmState } from "../store/vmdir.js";
import { signalQemu, stopQemu, waitForExit } from "./stop.js";
import { toVmInfo, type VmInfo } from "./info.js";
import type { ImageContext } from "./images.js";

export interface SkiffOptions {
  /** Overrides SKIFF_HOME / the XDG default. */
  home?: string;
  cacheDir?: string;
  runner?: Runner;
}

export interface CreateOptions {
  image: string;
  name?: string;
  cpus?: number;
  memoryMiB?: number;
  env?: Record<string, string>;
  /** CMD; empty or absent: the image's. */
  command?: string[];
  /** `--entrypoint`: replaces the image's and drops its Cmd, as Docker does. */
  entrypoint?: string[];
  user?: string;
  workingDir?: string;
  /** Platform to pull ("linux/amd64", the default). */
  platform?: string;
  /** When to pull: "missing" (default), "always", "never". */
  pull?: "missing" | "always" | "never";
  network?: NetworkSpec;
  autoRemove?: boolean;
  labels?: Record<string, string>;
  /** Boot a cloud image (URL or path) instead of `image`; also implied when `image` looks like one (isCloudRef). */
  imageUrl?: string;
  /** Cloud images: grow the disk to this many bytes (`--disk 20G`). */
  diskBytes?: number;
  /** Cloud images: a cloud-init user-data file merged into skiff's (`--user-data`). */
  userDataPath?: string;
}

export interface StartOptions {
  /** Wait until the guest agent answers (default true). */
  waitReady?: boolean;
  timeoutMs?: number;
}

/** How long a boot may take before it counts as failed; TCG on a loaded host is slow. */
const defaultBootTimeoutMs = Number(process.env.SKIFF_BOOT_TIMEOUT_MS ?? 120_000);

export class Skiff extends EventEmitter<SkiffEvents> {
  readonly store: VmStore;
  readonly home: string;
  readonly cacheDir: string;
  readonly runner: Runner;
  #facts: Promise<HostFacts> | undefined;

  constructor(opts: SkiffOptions = {}) {
    super();
    const paths = skiffPaths(opts.home === undefined ? {} : { env: { ...process.env, SKIFF_HOME: opts.home } });
    this.home = paths.home;
    this.cacheDir = opts.cacheDir ?? paths.cache;
    this.store = new VmStore({ home: this.home });
    this.runner = opts.runner ?? defaultRunner;
  }

  #progress(vm: string, phase: Phase, message: string, startedAt: number): void {
    this.emit("progress", { vm, phase, message, elapsedMs: Date.now() - startedAt });
  }

  /** QEMU, kernel, acceleration: gathered once per instance, cached on disk. */
  hostFacts(): Promise<HostFacts> {
    this.#facts ??= gatherHostFacts(this.cacheDir).catch((err: unknown) => {
      this.#facts = undefined;
      throw err;
    });
    return this.#facts;
  }

  async create(opts: CreateOptions): Promise<VmInfo> {
    const t0 = Date.now();
    await this.reconcile();
    if (opts.name !== undefined) validateName(opts.name);
    if (opts.imageUrl !== undefined || isCloudRef(opts.image)) return this.#createCloud(opts, t0);
    // Everything that can fail for a reason outside the VM fails before anything is made.
    this.#progress(opts.name ?? "", "preparing-image", `preparing image ${opts.image}`, t0);
    const image = await resolveImage(opts.image, {
      cacheDir: this.cacheDir,
      home: this.home,
      runner: this.runner,
      place: "IMAGE",
      ...(opts.platform === undefined ? {} : { platform: opts.platform }),
      ...(opts.pull === undefined ? {} : { pull: opts.pull }),
      onPull: (e) => this.emit("pull", e),
      onEvent: (e) => this.emit("build", e),
    });
    this.#progress(opts.name ?? "", "preparing-kernel", "preparing kernel and QEMU", t0);
    const facts = await this.hostFacts();

    const record = await this.#createRecord(
      opts.name,
      (name) => ({
        ...commonSpec(name, opts, defaults.memoryMiB),
        image: opts.image,
        ...runtimeFrom(image.config, opts),
      }),
      {
        image: { digest: image.digest, basePath: image.basePath },
        kernel: { version: facts.kernel.version, path: facts.vmlinuxPath },
      },
    );
    return this.#finishCreate(record, t0, async () => {
      await generateVmKeys(record.paths, this.runner, `skiff-${record.name}`);
      await this.runner.run(
        "qemu-img",
        ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", image.basePath, record.paths.overlay],
        { check: true, debianPackage: "qemu-utils" },
      );
    });
  }

  /** Claim a name (a generated one is drawn again if a concurrent create took it) and make the VM's directory. */
  async #createRecord(requested: string | undefined, specFor: (name: string) => MachineSpec, extra: CreateExtra): Promise<VmRecord> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.create(specFor(requested ?? uniqueRandomName(() => false)), extra);
      } catch (err) {
        const retry = requested === undefined && err instanceof SkiffError && err.code === "ERR_SKIFF_NAME_IN_USE" && attempt < 20;
        if (!retry) throw err;
      }
    }
  }

  /** Fill in a new VM's directory with `fill`; commit it, or remove every trace when anything fails. */
  async #finishCreate(record: VmRecord, t0: number, fill: () => Promise<void>): Promise<VmInfo> {
    this.#progress(record.name, "creating", `creating ${record.name}`, t0);
    try {
      await fill();
      await this.store.commit(record.id);
    } catch (err) {
      await this.store.remove(record.id);
      throw err;
    }
    return this.info(record);
  }

  /** A cloud image: fetched (cached by URL), a qcow2 overlay on it, a NoCloud seed, an SSH port of its own. */
  async #createCloud(opts: CreateOptions, t0: number): Promise<VmInfo> {
    const source = opts.imageUrl ?? opts.image;
    this.#progress(opts.name ?? "", "preparing-image", `fetching cloud image ${source}`, t0);
    const image = await fetchCloudImage(source, {
      cacheDir: this.cacheDir,
      runner: this.runner,
      refetch: opts.pull === "always",
      place: opts.imageUrl === undefined ? "IMAGE" : "--image-url",
    });
    const userData = opts.userDataPath === undefined ? undefined : await readUserData(opts.userDataPath);
    // The forward port is chosen and recorded under one lock, so concurrent creates never share one.
    const record = await withLock(
      "ports",
      async () => {
        const used = new Set((await this.store.list()).flatMap((r) => (r.config.spec.boot?.kind === "cloud" ? [r.config.spec.boot.sshPort] : [])));
        const sshPort = await freeLoopbackPort(used);
        return this.#createRecord(
          opts.name,
          (name) => ({
            ...commonSpec(name, opts, defaults.cloudMemoryMiB),
            image: source,
            env: opts.env ?? {},
            entrypoint: [],
            command: opts.command ?? [],
            exposedPorts: [],
            boot: {
              kind: "cloud",
              imagePath: image.path,
              format: image.format,
              ...(opts.diskBytes === undefined ? {} : { diskBytes: opts.diskBytes }),
              ...(opts.userDataPath === undefined ? {} : { userDataPath: resolvePath(opts.userDataPath) }),
              sshPort,
              sshUser: cloudSshUser,
            },
          }),
          { image: { digest: image.digest, basePath: image.path } },
        );
      },
      { home: this.home, purpose: "allocate an SSH port" },
    );
    return this.#finishCreate(record, t0, async () => {
      const keys = await generateVmKeys(record.paths, this.runner, `skiff-${record.name}`);
      await prepareCloudDisk({ record, keys, image, diskBytes: opts.diskBytes, userData, runner: this.runner });
    });
  }

  /** How to reach a VM's guest: the agent ports, or SSH over the forward for a cloud image. */
  #sessionTarget(record: VmRecord): { tcp?: TcpTarget } {
    const boot = record.config.spec.boot;
    if (boot?.kind !== "cloud") return {};
    return { tcp: { host: "127.0.0.1", port: boot.sshPort, username: boot.sshUser, maxSessions: 4 } };
  }

  async start(name: string, opts: StartOptions = {}): Promise<VmInfo> {
    const t0 = Date.now();
    await this.reconcile();
    const record = await this.store.get(name);
    const facts = await this.hostFacts();
    const identity = await this.#locked(record, "start", async (_state, status) => {
      if (status.state === "running") return undefined;
      this.#progress(record.name, "booting", `booting ${record.name} (${facts.accel.accel})`, t0);
      const identity = await spawnQemu({
        spec: record.config.spec,
        paths: record.paths,
        facts,
        runner: this.runner,
        cacheDir: this.cacheDir,
      });
      await this.store.updateState(record.id, {
        qemu: identity,
        startedAt: new Date().toISOString(),
        accel: facts.accel.accel,
        exit: undefined,
      });
      return identity;
    });
    if (identity !== undefined && opts.waitReady !== false) {
      try {
        const deadline = Date.now() + (opts.timeoutMs ?? defaultBootTimeoutMs);
        let conn = await this.#waitReady(record, identity, deadline - Date.now());
        if (record.config.spec.boot?.kind === "cloud") conn = await this.#waitCloudInit(record, identity, conn, deadline);
        await conn.close();
      } catch (err) {
        // Never leave a VM half-booted behind a failed start.
        await this.#hardStop(record, "boot-failed");
        throw err;
      }
      this.#progress(record.name, "ready", `${record.name} is ready`, t0);
    }
    return this.info(record);
  }

  /**
   * A cloud image's sshd answers before cloud-init is done (and may be
   * restarted by it): ready means cloud-init's boot-finished marker exists.
   */
  async #waitCloudInit(
    record: VmRecord,
    identity: { pid: number; startTime: number },
    first: AgentConnection,
    deadline: number,
  ): Promise<AgentConnection> {
    let conn = first;
    for (;;) {
      try {
        const r = await conn.run(["test", "-f", "/var/lib/cloud/instance/boot-finished"], { timeoutMs: 15_000 });
        if (r.code === 0) return conn;
      } catch {
        await conn.close().catch(() => undefined);
        conn = await this.#waitReady(record, identity, Math.max(1_000, deadline - Date.now()));
      }
      if (Date.now() >= deadline) {
        await conn.close().catch(() => undefined);
        throw new SkiffError("ERR_SKIFF_BOOT_FAILED", `cloud-init did not finish on ${record.name} in time`, {
          hint: `see \`skiff logs ${record.name}\`; raise SKIFF_BOOT_TIMEOUT_MS on a slow host`,
          place: record.name,
        });
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }

  async #waitReady(record: VmRecord, identity: { pid: number; startTime: number }, timeoutMs: number): Promise<AgentConnection> {
    const hostPublicKey = await readHostPublicKey(record.paths);
    const abort = new AbortController();
    const watchdog = (async () => {
      // QEMU dying during boot must end the wait at once, not at the deadline.
      while (!abort.signal.aborted) {
        if (!identityAlive(identity)) {
          abort.abort();
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      return await waitForAgent({
        socketPaths: record.paths.agentSockets,
        lockPrefix: `vm-${record.id}`,
        home: this.home,
        privateKeyPath: record.paths.sshKey,
        hostPublicKey,
        timeoutMs,
        signal: abort.signal,
        vmName: record.name,
        ...this.#sessionTarget(record),
      });
    } catch (err) {
      if (!identityAlive(identity)) {
        const why = await bootFailureReason(record.paths.consoleLog);
        throw new SkiffError("ERR_SKIFF_BOOT_FAILED", `${record.name} stopped while booting${why === undefined ? "" : `: ${why}`}`, {
          hint: `see the console log: \`skiff logs ${record.name}\``,
          place: record.name,
          cause: err,
        });
      }
      throw err;
    } finally {
      abort.abort();
      await watchdog;
    }
  }

  /** Run `fn` holding the VM's lifecycle lock, with its state and observed status. */
  #locked<T>(record: VmRecord, verb: string, fn: (state: VmState, status: ObservedStatus) => Promise<T>): Promise<T> {
    return withLock(
      vmLockName(record.id),
      async () => {
        const state = await this.store.readState(record.id);
        return fn(state, await observeStatus(record.paths, state));
      },
      { home: this.home, purpose: `${verb} ${record.name}` },
    );
  }

  /** QEMU has ended: drop its sockets and pidfile and remember how. */
  async #recordExit(record: VmRecord, exit: Omit<ExitRecord, "at">): Promise<void> {
    await clearRuntimeFiles(record.paths);
    await this.store.updateState(record.id, { exit: { at: new Date().toISOString(), ...exit }, owner: undefined });
  }

  /** Kill QEMU without asking the guest, and record why. */
  async #hardStop(record: VmRecord, reason: string): Promise<void> {
    const state = await this.store.readState(record.id);
    if (state.qemu !== undefined) await signalQemu(state.qemu, 9);
    await this.#recordExit(record, { reason, signal: "SIGKILL" });
  }

  async stop(name: string, opts: { timeoutMs?: number } = {}): Promise<VmInfo> {
    const t0 = Date.now();
    const record = await this.store.get(name);
    await this.#locked(record, "stop", async (state, status) => {
      if (status.state !== "running" || state.qemu === undefined) return;
      this.#progress(record.name, "stopping", `stopping ${record.name}`, t0);
      const step = await stopQemu({
        identity: state.qemu,
        qmpSocket: record.paths.qmpSocket,
        timeoutMs: opts.timeoutMs ?? 10_000,
        onStep: (s) => this.#progress(record.name, "stopping", `stopping ${record.name}: ${s}`, t0),
      });
      await this.#recordExit(record, { reason: step === "powerdown" ? "stopped" : `stopped (${step})` });
      this.#progress(record.name, "stopped", `${record.name} stopped (${step})`, t0);
    });
    if (record.config.spec.autoRemove) {
      await this.remove(name, { force: true });
      return { ...(await this.info(record)), state: "stopped" };
    }
    return this.info(record);
  }

  async restart(name: string, opts: { timeoutMs?: number } & StartOptions = {}): Promise<VmInfo> {
    const record = await this.store.get(name);
    if (record.config.spec.autoRemove) {
      throw new SkiffError("ERR_SKIFF_USAGE", `${record.name} was made with --rm; restarting would remove it`, { place: record.name });
    }
    await this.stop(name, opts);
    return this.start(name, opts);
  }

  /** Send a signal to the VM's QEMU process (default SIGKILL: pull the plug). */
  async kill(name: string, opts: { signal?: number } = {}): Promise<VmInfo> {
    const record = await this.store.get(name);
    const sig = opts.signal ?? 9;
    await this.#locked(record, "kill", async (state, status) => {
      if (status.state !== "running" || state.qemu === undefined) throw notRunning(record.name);
      if (await signalQemu(state.qemu, sig)) await this.#recordExit(record, { reason: "killed", signal: String(sig) });
    });
    return this.info(record);
  }

  /** Remove a VM and every trace of it; a running VM only with force. */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const t0 = Date.now();
    const record = await this.store.get(name);
    await this.#locked(record, "remove", async (state, status) => {
      if (status.state === "running") {
        if (opts.force !== true) {
          throw new SkiffError("ERR_SKIFF_VM_RUNNING", `${record.name} is running`, {
            hint: `stop it first (\`skiff stop ${record.name}\`) or use \`skiff rm -f ${record.name}\``,
            place: record.name,
          });
        }
        if (state.qemu !== undefined) {
          await signalQemu(state.qemu, 9);
          await waitForExit(state.qemu, 5_000);
        }
      }
      await this.store.remove(record.id);
    });
    this.#progress(record.name, "removed", `${record.name} removed`, t0);
  }

  async list(opts: { all?: boolean } = {}): Promise<VmInfo[]> {
    await this.reconcile();
    const infos = await Promise.all((await this.store.list()).map((r) => this.info(r)));
    return opts.all === true ? infos : infos.filter((i) => i.state === "running");
  }

  async inspect(name: string): Promise<VmInfo> {
    await this.reconcile();
    return this.info(await this.store.get(name));
  }

  async info(record: VmRecord): Promise<VmInfo> {
    const state = existsSync(record.paths.dir) ? await this.store.readState(record.id) : {};
    const status = await observeStatus(record.paths, state);
    return toVmInfo(record, state, status);
  }

  /** What the image verbs need: the cache, credentials' home, and which bases VMs use. */
  get images(): ImageContext {
    return { cacheDir: this.cacheDir, home: this.home, runner: this.runner, vms: () => this.list({ all: true }) };
  }

  /** An SSH connection to the running VM's guest agent. */
  async connect(name: string, opts: { timeoutMs?: number } = {}): Promise<AgentConnection> {
    const record = await this.store.get(name);
    const status = await observeStatus(record.paths, await this.store.readState(record.id));
    if (status.state !== "running") throw notRunning(record.name);
    return connectAgent({
      socketPaths: record.paths.agentSockets,
      lockPrefix: `vm-${record.id}`,
      home: this.home,
      privateKeyPath: record.paths.sshKey,
      hostPublicKey: await readHostPublicKey(record.paths),
      // A cloud image's sshd can be restarting (cloud-init, a slow TCG guest): give it longer.
      timeoutMs: opts.timeoutMs ?? (record.config.spec.boot?.kind === "cloud" ? 60_000 : 15_000),
      vmName: record.name,
      ...this.#sessionTarget(record),
    });
  }

  /**
   * Tie a VM's life to this process (a foreground `run`): if the process
   * dies without cleaning up, the next skiff command stops the VM, and
   * removes it when it was made with --rm.
   */
  async attach(name: string): Promise<void> {
    const record = await this.store.get(name);
    await this.store.updateState(record.id, { owner: currentProcess() });
  }

  async detach(name: string): Promise<void> {
    const record = await this.store.get(name);
    await this.store.updateState(record.id, { owner: undefined });
  }

  /**
   * Bring the store in line with reality after crashes: half-created VMs
   * go, VMs whose foreground owner died are stopped, --rm VMs that stopped
   * are removed, and a QEMU that died behind skiff's back is marked crashed.
   */
  async reconcile(): Promise<string[]> {
    const t0 = Date.now();
    const reaped = await this.store.gc();
    for (const record of await this.store.list()) {
      const state = await this.store.readState(record.id);
      const status = await observeStatus(record.paths, state);
      const ownerDead = state.owner !== undefined && !identityAlive(state.owner);
      if (status.state === "running" && ownerDead) {
        await this.#hardStop(record, "owner-died");
        this.#progress(record.name, "reaped", `${record.name} stopped: the skiff run attached to it died`, t0);
      } else if (status.state === "crashed" && state.exit === undefined) {
        await this.#recordExit(record, { reason: "crashed" });
      }
      const after = await observeStatus(record.paths, await this.store.readState(record.id));
      const attached = state.owner !== undefined && !ownerDead;
      if (record.config.spec.autoRemove && after.state !== "running" && after.state !== "created" && !attached) {
        await this.store.remove(record.id);
        reaped.push(record.id);
        this.#progress(record.name, "removed", `${record.name} removed (--rm)`, t0);
      }
    }
    return reaped;
  }
}

/** The fields every VM's spec has, whatever it boots. */
function commonSpec(
  name: string,
  opts: CreateOptions,
  memoryMiB: number,
): Pick<MachineSpec, "name" | "cpus" | "memoryMiB" | "hostname" | "network" | "autoRemove" | "labels"> {
  return {
    name,
    cpus: opts.cpus ?? defaults.cpus,
    memoryMiB: opts.memoryMiB ?? memoryMiB,
    hostname: name.replace(/[^a-zA-Z0-9-]/g, "-").replace(/^-+/, "").slice(0, 63) || "skiff",
    network: opts.network ?? { mode: "user", restrict: false, forwards: [] },
    autoRemove: opts.autoRemove ?? false,
    labels: opts.labels ?? {},
  };
}

/** Docker's rules for what an image's config and the user's flags make of the main command and defaults. */
export function runtimeFrom(
  image: ImageRuntimeConfig,
  opts: Pick<CreateOptions, "command" | "entrypoint" | "env" | "user" | "workingDir">,
): Pick<MachineSpec, "entrypoint" | "command" | "env" | "user" | "workingDir" | "exposedPorts"> {
  const userCommand = opts.command ?? [];
  const entrypoint = opts.entrypoint ?? image.entrypoint;
  // A new entrypoint drops the image's Cmd; a CMD given on the command line replaces it.
  const command = userCommand.length > 0 ? userCommand : opts.entrypoint !== undefined ? [] : image.cmd;
  const user = opts.user ?? image.user;
  const workingDir = opts.workingDir ?? image.workingDir;
  return {
    entrypoint,
    command,
    env: { ...image.env, ...(opts.env ?? {}) },
    ...(user === undefined || user === "" ? {} : { user }),
    ...(workingDir === undefined || workingDir === "" ? {} : { workingDir }),
    exposedPorts: image.exposedPorts,
  };
}

function notRunning(name: string): SkiffError {
  return new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, {
    hint: `start it with \`skiff start ${name}\``,
    place: name,
  });
}

export type { RunState, VmInfo };

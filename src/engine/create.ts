/**
 * Making a VM: everything that can fail for a reason outside the VM fails
 * before anything is made; then a name is claimed, the VM's directory filled
 * in (keys, an overlay disk, a cloud image's seed) and committed — or removed
 * again when anything fails.
 */
import { resolve as resolvePath } from "node:path";
import { SkiffError } from "../errors.js";
import { cloudSshUser, fetchCloudImage, isCloudRef } from "../image/cloud.js";
import type { ImageRuntimeConfig } from "../image/oci/types.js";
import { resolveImage } from "../image/resolve.js";
import { buildVmLabel, defaults, type InitSpec, type KernelSpec, type MachineSpec, type NetworkSpec, type RestartPolicy } from "../spec/machine.js";
import { resolveEgress, type EgressRequest, type EgressSpec } from "../network/egress.js";
import { jailMode } from "../jail/ids.js";
import { withLock } from "../store/lock.js";
import type { CreateExtra, VmRecord } from "../store/store.js";
import type { HostFacts } from "./host.js";
import { uniqueRandomName, validateName } from "../util/names.js";
import { checkMemoryMiB, formatBytes } from "../util/units.js";
import { prepareCloudDisk, readUserData } from "./cloud-vm.js";
import { freeLoopbackPort, resolveForwards } from "../network/ports.js";
import { takenForwards } from "./ports.js";
import { allocateAttachments, withNetworkLocks, type NetworkRequest } from "./vm-network.js";
import { progress, type EngineContext } from "./context.js";
import { generateVmKeys } from "./keys.js";
import { checkMounts, createMissingVolumes, removeCreated, withVolumesLocked, type MountRequest } from "./volumes.js";
import { checkKernel } from "../kernel/override.js";
import { crashPoint } from "../util/crash-point.js";
import { currentProcess } from "../process/pid.js";
import { checkGuestInput } from "../guest/limits.js";
import { checkMainCommand } from "../guest/exec-request.js";
import { ensureBaseInitramfs } from "../guest/initramfs.js";
import { checkVmBootMemory, initramfsVariant, vmKernel } from "./launch.js";

export interface CreateOptions {
  image: string;
  name?: string;
  /** Default: the name, made a valid host name. */
  hostname?: string;
  cpus?: number;
  /** Memory as the CLI takes it: MiB as a number, or "512m", "1g" (checkCreateOptions turns it into memoryMiB). */
  memory?: number | string;
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
  /** The user-net NIC (default: user networking) or none. */
  network?: NetworkSpec;
  /** Named networks to join, in order (eth1, eth2, … after a user NIC). */
  networks?: NetworkRequest[];
  /** `--dns`: nameservers for the guest. */
  dns?: string[];
  autoRemove?: boolean;
  labels?: Record<string, string>;
  /** Boot a cloud image (URL or path) instead of `image`; also implied when `image` looks like one (isCloudRef). */
  imageUrl?: string;
  /** Cloud images: the disk size as the CLI takes it: MiB as a number, or "20g" (checkCreateOptions turns it into diskBytes). */
  disk?: number | string;
  /** Cloud images: grow the disk to this many bytes (`--disk 20G`). */
  diskBytes?: number;
  /** Cloud images: the user skiff logs in as (default `skiff`), made by cloud-init with passwordless sudo. */
  sshUser?: string;
  /** Cloud images: a cloud-init user-data file merged into skiff's (`--user-data`). */
  userDataPath?: string;
  /** Host directories (live, virtio-9p) and named volumes to mount in the guest (`-v`). */
  mounts?: MountRequest[];
  /** A kernel file instead of skiff's (virtio built in), and extra kernel command line words. */
  kernel?: KernelSpec;
  /** Let skiff-init start and supervise the main command with this restart policy (`skiff up` services). */
  init?: InitSpec;
  /** Where the VM's traffic may go (`--egress`, `--host-loopback`); default: anywhere but the host's loopback. */
  egress?: EgressRequest;
  /** Start QEMU again when it ends (`--restart`): on-failure, always, unless-stopped. */
  restart?: RestartPolicy;
  /**
   * Tie the VM to this process from the moment it exists (a foreground
   * `run`, which lets go with Skiff.detach): if the process dies before
   * that, the next command stops the VM, and removes it with `autoRemove`.
   */
  attach?: boolean;
}

/**
 * Make a VM (not started); its record once committed.
 *
 * `standOn`, when the VM starts right after (run): a microVM whose
 * combination has a boot snapshot stands on it from the start (its disk a
 * layer over the snapshot's, the snapshot's keys: snapshot/boot.ts, given by
 * the caller, which may import it without a cycle), instead of getting a
 * disk and keys of its own that the start would throw away for the
 * snapshot's: one qemu-img less on every `run` (~35 ms). It says whether it
 * did. A plain create keeps its own disk and keys, and its first start
 * adopts the boot snapshot there is then.
 */
export async function createVm(ctx: EngineContext, opts: CreateOptions, t0: number, how: { standOn?: StandOn } = {}): Promise<VmRecord> {
  if (opts.name !== undefined) validateName(opts.name);
  // The CLI and project files checked it while parsing; the library's callers give MiB directly.
  if (opts.memoryMiB !== undefined) checkMemoryMiB(opts.memoryMiB, "memoryMiB");
  if (opts.restart !== undefined) checkRestart(opts.restart, "restart");
  // Names in egress are resolved once, now, before anything is made.
  const egress = opts.egress === undefined ? undefined : await resolveEgress(opts.egress);
  const resolved: ResolvedCreate = { ...withoutRootEgress(opts, egress), ...(egress === undefined ? {} : { egressSpec: egress }) };
  return opts.imageUrl !== undefined || isCloudRef(opts.image) ? createCloud(ctx, resolved, t0) : createMicroVm(ctx, resolved, t0, how.standOn);
}

/**
 * Without root there is no jail uid to tell a VM's QEMU by, so the host
 * cannot filter its connections one by one: `deny` becomes QEMU's own
 * restrict=on (nothing out but published ports and guest forwards), and an
 * allow list is refused rather than silently not enforced.
 */
function withoutRootEgress(opts: CreateOptions, egress: EgressSpec | undefined): CreateOptions {
  if (egress === undefined || jailMode() === "root") return opts;
  if (egress.policy === "allow") {
    throw new SkiffError("ERR_SKIFF_NEEDS_ROOT", "an egress allow list needs skiff to run as root: the host filters each VM's connections by its jail user", {
      place: opts.egress?.place ?? "egress",
      hint: "run skiff as root, or use the deny policy (QEMU's restrict=on) without root",
    });
  }
  if (egress.policy === "deny" && !egress.hostLoopback && opts.network?.mode !== "none") {
    return { ...opts, network: { ...(opts.network ?? { mode: "user", forwards: [] }), restrict: true } as NetworkSpec };
  }
  return opts;
}

/** CreateOptions with what createVm resolved before anything is made. */
export type ResolvedCreate = CreateOptions & { egressSpec?: EgressSpec };

/** Puts a VM being created on its combination's boot snapshot, if there is one; whether it did. */
export type StandOn = (record: VmRecord, facts: HostFacts) => Promise<boolean>;

async function createMicroVm(ctx: EngineContext, opts: ResolvedCreate, t0: number, standOn: StandOn | undefined): Promise<VmRecord> {
  // Mounts and the kernel fail here, before an image is pulled; volumes are checked again under their lock.
  // What skiff-init could not take is refused now, not cut in the guest or met at boot; the image's defaults only add to the command.
  checkGuestInput(opts);
  checkMain(opts);
  await checkMounts(ctx, opts.mounts ?? []);
  const kernel = await checkKernel(opts.kernel, { cacheDir: ctx.cacheDir, home: ctx.home, useDefault: opts.labels?.[buildVmLabel] === undefined });
  const init = opts.init === undefined ? undefined : checkInit(opts.init);
  progress(ctx, opts.name ?? "", "preparing-image", `preparing image ${opts.image}`, t0);
  const image = await resolveImage(opts.image, {
    cacheDir: ctx.cacheDir,
    home: ctx.home,
    runner: ctx.runner,
    place: "image",
    ...(opts.platform === undefined ? {} : { platform: opts.platform }),
    ...(opts.pull === undefined ? {} : { pull: opts.pull }),
    onPull: (e) => ctx.emit("pull", e),
    onEvent: (e) => ctx.emit("build", e),
  });
  const runtime = runtimeFrom(image.config, opts);
  checkMain(runtime);
  progress(ctx, opts.name ?? "", "preparing-kernel", "preparing kernel and QEMU", t0);
  const facts = await ctx.hostFacts();
  // Too little memory for this kernel is refused before a volume, a name or a directory is made.
  const booted = vmKernel({ kernel }, facts, ctx.cacheDir);
  const initramfsPath = await ensureBaseInitramfs({ kernel: booted.modules, cacheDir: ctx.cacheDir, ...initramfsVariant(opts) });
  await checkVmBootMemory({ memoryMiB: opts.memoryMiB ?? defaults.memoryMiB, kernel: booted, initramfsPath });

  const record = await withVolumesLocked(ctx, opts.mounts, "create a VM with volumes", async () => {
    const made = await createMissingVolumes(ctx, opts.mounts ?? []);
    const mounts = await checkMounts(ctx, opts.mounts ?? []);
    return createRecord(
      ctx,
      opts,
      async (name) => ({
        ...commonSpec(name, opts, defaults.memoryMiB),
        image: opts.image,
        ...runtime,
        ...(mounts.length === 0 ? {} : { mounts }),
        ...(kernel === undefined ? {} : { kernel }),
        ...(init === undefined ? {} : { init }),
      }),
      {
        image: { digest: image.digest, basePath: image.basePath },
        kernel: { version: booted.version, path: booted.path },
      },
    ).catch(async (err: unknown) => {
      await removeCreated(ctx, made);
      throw err;
    });
  });
  return finishCreate(ctx, { record, t0, attach: opts.attach === true }, async () => {
    if (standOn !== undefined && (await standOn(record, facts))) return;
    await generateVmKeys(record.paths, `skiff-${record.name}`);
    await ctx.runner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", image.basePath, record.paths.overlay], {
      check: true,
      debianPackage: "qemu-utils",
    });
  });
}

/** The VM's command, as the guest will be handed it (exec-request.ts: checkMainCommand). */
function checkMain(rt: Pick<CreateOptions, "entrypoint" | "command" | "user" | "workingDir">): void {
  checkMainCommand({
    argv: [...(rt.entrypoint ?? []), ...(rt.command ?? [])],
    ...(rt.user === undefined ? {} : { user: rt.user }),
    ...(rt.workingDir === undefined ? {} : { cwd: rt.workingDir }),
  });
}

/**
 * What a cloud image cannot have yet. Shared with `skiff config`, which
 * checks a project's cloud services with it before `up` gets that far.
 */
export function checkCloudRequest(opts: { mounts?: readonly unknown[]; kernel?: unknown; init?: unknown; networks?: readonly unknown[] }): void {
  const microvmOnly = (opts.mounts ?? []).length > 0 ? "mounts" : opts.kernel !== undefined ? "kernel" : opts.init !== undefined ? "init" : undefined;
  if (microvmOnly !== undefined) {
    // A cloud image boots its own kernel and init; skiff-init is not there to mount or supervise.
    throw new SkiffError("ERR_SKIFF_USAGE", "cloud images cannot have volumes, a kernel of their own or skiff's supervision yet", {
      place: microvmOnly,
      hint: "use a microVM image, or copy files in with `skiff cp`",
    });
  }
  if ((opts.networks ?? []).length > 0) {
    // The image's own network stack would need a cloud-init network-config for them; not written yet.
    throw new SkiffError("ERR_SKIFF_USAGE", "cloud images cannot join named networks yet", {
      place: "networks",
      hint: "use user networking (with port forwards) with cloud images, or a microVM image on the network",
    });
  }
}

/** A cloud image: fetched (cached by URL), a qcow2 overlay on it, a NoCloud seed, an SSH port of its own. */
async function createCloud(ctx: EngineContext, opts: ResolvedCreate, t0: number): Promise<VmRecord> {
  const source = opts.imageUrl ?? opts.image;
  checkCloudRequest(opts);
  progress(ctx, opts.name ?? "", "preparing-image", `fetching cloud image ${source}`, t0);
  const image = await fetchCloudImage(source, {
    cacheDir: ctx.cacheDir,
    runner: ctx.runner,
    refetch: opts.pull === "always",
    place: opts.imageUrl === undefined ? "image" : "imageUrl",
  });
  if (opts.diskBytes !== undefined && opts.diskBytes < image.virtualSize) {
    throw new SkiffError("ERR_SKIFF_USAGE", `disk ${formatBytes(opts.diskBytes)} is smaller than the image's disk (${formatBytes(image.virtualSize)})`, {
      place: "disk",
      hint: `a cloud image's disk can only grow: give at least ${formatBytes(image.virtualSize)}, or leave the disk size out`,
    });
  }
  const userData = opts.userDataPath === undefined ? undefined : await readUserData(opts.userDataPath);
  const record = await createRecord(
    ctx,
    opts,
    async (name, usedPorts) => ({
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
        sshPort: await freeLoopbackPort(usedPorts),
        sshUser: opts.sshUser === undefined ? cloudSshUser : validateSshUser(opts.sshUser),
      },
    }),
    { image: { digest: image.digest, basePath: image.path } },
  );
  return finishCreate(ctx, { record, t0, attach: opts.attach === true }, async () => {
    const keys = await generateVmKeys(record.paths, `skiff-${record.name}`);
    await prepareCloudDisk({ record, keys, image, diskBytes: opts.diskBytes, userData, runner: ctx.runner });
  });
}

/**
 * Claim a name (a generated one is drawn again if a concurrent create took
 * it), host ports and addresses on its networks, and make the VM's
 * directory. Ports and addresses are read from the VM records themselves
 * while their locks are held, so two concurrent creates never share one.
 */
export async function createRecord(
  ctx: EngineContext,
  opts: ResolvedCreate,
  specFor: (name: string, usedPorts: ReadonlySet<number>) => Promise<MachineSpec>,
  extra: CreateExtra,
): Promise<VmRecord> {
  const requests = opts.networks ?? [];
  return withLock(
    "ports",
    () =>
      withNetworkLocks(ctx, requests, async () => {
        const vms = await ctx.store.list({ includeIncomplete: true });
        const taken = await takenForwards(ctx);
        const usedPorts = new Set(taken.map((t) => t.forward.hostPort));
        for (let attempt = 0; ; attempt++) {
          const name = opts.name ?? uniqueRandomName((n) => vms.some((vm) => vm.name === n));
          const spec = await specFor(name, usedPorts);
          const networks = await allocateAttachments(ctx, name, requests);
          const network = spec.network.mode === "user" ? { ...spec.network, forwards: await resolveForwards(spec.network.forwards, taken) } : spec.network;
          try {
            return await ctx.store.create(
              { ...spec, network, ...(networks.length === 0 ? {} : { networks }), ...(opts.dns === undefined ? {} : { dns: opts.dns }) },
              extra,
            );
          } catch (err) {
            const retry = opts.name === undefined && err instanceof SkiffError && err.code === "ERR_SKIFF_NAME_IN_USE" && attempt < 20;
            if (!retry) throw err;
          }
        }
      }),
    { home: ctx.home, purpose: "allocate ports and addresses", timeoutMs: 60_000 },
  );
}

/** Fill in a new VM's directory with `fill`; commit it, or remove every trace when anything fails. */
export async function finishCreate(ctx: EngineContext, made: { record: VmRecord; t0: number; attach: boolean }, fill: () => Promise<void>): Promise<VmRecord> {
  const { record } = made;
  progress(ctx, record.name, "creating", `creating ${record.name}`, made.t0);
  try {
    await fill();
    // Before the commit: there is no moment when the VM exists and its owner is not written.
    if (made.attach) await ctx.store.updateState(record.id, { owner: currentProcess() });
    crashPoint("create:filled");
    await ctx.store.commit(record.id);
  } catch (err) {
    await ctx.store.remove(record.id);
    throw err;
  }
  return record;
}

const restartPolicies: readonly RestartPolicy[] = ["no", "on-failure", "always", "unless-stopped"];

function checkRestart(policy: RestartPolicy, place: string): RestartPolicy {
  if (!restartPolicies.includes(policy)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `unknown restart policy: ${String(policy)}`, {
      place,
      hint: `use one of ${restartPolicies.join(", ")}`,
    });
  }
  return policy;
}

function checkInit(init: InitSpec): InitSpec {
  return { restart: checkRestart(init.restart, "restart") };
}

/** The fields every VM's spec has, whatever it boots. */
function commonSpec(
  name: string,
  opts: ResolvedCreate,
  memoryMiB: number,
): Pick<MachineSpec, "name" | "cpus" | "memoryMiB" | "hostname" | "network" | "autoRemove" | "labels" | "egress" | "restart"> {
  return {
    ...(opts.egressSpec === undefined ? {} : { egress: opts.egressSpec }),
    ...(opts.restart === undefined || opts.restart === "no" ? {} : { restart: opts.restart }),
    name,
    cpus: opts.cpus ?? defaults.cpus,
    memoryMiB: opts.memoryMiB ?? memoryMiB,
    hostname: opts.hostname ?? hostnameFor(name),
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

function validateSshUser(user: string): string {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) {
    throw new SkiffError("ERR_SKIFF_BAD_NAME", `invalid SSH user name ${JSON.stringify(user)}`, {
      place: "sshUser",
      hint: "use a Linux user name: lowercase letters, digits, '_' and '-', starting with a letter or '_'",
    });
  }
  return user;
}

/** A VM's default hostname: its name, cut to what a DNS label allows. */
export function hostnameFor(name: string): string {
  return name.replace(/[^a-zA-Z0-9-]/g, "-").replace(/^-+/, "").slice(0, 63) || "skiff";
}

/**
 * VmStore: the VMs under <home>/vms, one directory each, named by a random
 * id. Names are unique and live in each VM's config.json; the global "names"
 * lock serialises the check-and-claim.
 *
 * Invariants that make a crash at any point harmless:
 * - a VM directory appears atomically (built as `.tmp-<id>`, then renamed),
 *   already holding config.json and the `creating.json` marker;
 * - it counts as complete once `commit` removed the marker; until then the
 *   marker names its creator (pid + start time), so `gc` can tell a crashed
 *   creation from one still in progress;
 * - it disappears atomically (renamed to `.trash-<id>-…`, then deleted).
 *
 * Every record is checked against its schema when read (schema.ts). A VM
 * whose config.json, state.json or creating.json fails the check is
 * *broken*: listed apart with the reason, refused by every verb but `rm`,
 * and never in the way of the other VMs.
 */
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { currentProcess, identityAlive } from "../process/pid.js";
import { agentPortCount, type MachineSpec } from "../spec/machine.js";
import { readJsonIfExists, syncDir, writeJsonAtomic } from "./atomic.js";
import { lockFileNames, removeLockFiles, tryLock, withLock, type LockHandle } from "./lock.js";
import { checkedDir, checkSocketPathLength, skiffHome, vmIdLength, vmsDir } from "./paths.js";
import { brokenVm, isBroken, nameIn, type BrokenVm } from "./broken.js";
import { readRecord, recordSchema, unknownKeys } from "./record.js";
import type { CreatingMarker, SnapshotRef } from "./schema.js";
import { pruneChecked, useCheckedDir } from "./checked.js";
import { vmFiles, vmPaths, withAgentPorts, type ImageRecord, type KernelRecord, type VmConfig, type VmPaths, type VmState } from "./vmdir.js";
import { pathExists, readdirOrEmpty } from "../util/fs.js";
import { jailMode } from "../jail/ids.js";
import { claimJailIds, releaseJailIds } from "../jail/claims.js";
import { reapJailUid } from "../jail/reap.js";
import { crashPoint } from "../util/crash-point.js";
import { crypto } from "../util/builtins.js";

// The records' schemas, loaded only when a record has to be checked (src/store/record.ts says when).
const vmConfigRecord = recordSchema<VmConfig>("vm-config", async () => (await import("./schema.js")).vmConfigSchema);
const vmStateRecord = recordSchema<VmState>("vm-state", async () => (await import("./schema.js")).vmStateSchema);
const creatingMarkerRecord = recordSchema<CreatingMarker>("vm-creating", async () => (await import("./schema.js")).creatingMarkerSchema);

export { isBroken, type BrokenVm } from "./broken.js";

export interface VmRecord {
  id: string;
  name: string;
  paths: VmPaths;
  config: VmConfig;
  /** False while the VM is still being created (its marker is present). */
  complete: boolean;
}

export interface CreateExtra {
  image?: ImageRecord;
  kernel?: KernelRecord;
  meta?: Record<string, unknown>;
  snapshot?: SnapshotRef;
}

export interface VmStoreOptions {
  home?: string;
  /** How long create waits for the "names" lock. */
  lockTimeoutMs?: number;
}

const idPattern = new RegExp(`^[0-9a-f]{${vmIdLength}}$`);
/** `.trash-<id>-<hex>`, or `.trash-tmp-<id>-<hex>` for a directory removed before its commit: the VM id. */
const trashPattern = new RegExp(`^\\.trash-(?:tmp-)?([0-9a-f]{${vmIdLength}})-[0-9a-f]+$`);

/** Lock that lifecycle verbs on one VM (start, stop, rm) hold, so they never interleave. */
export function vmLockName(id: string): string {
  return `vm-${id}`;
}

/** The VM a lock is for: its lifecycle lock, its state lock, its agent ports' (`vm-<id>-agent-<n>`). */
const vmLockPattern = new RegExp(`^(?:vm|state)-([0-9a-f]{${vmIdLength}})(?:-agent-\\d+)?$`);

export class VmStore {
  readonly home: string;
  readonly vmsDir: string;
  readonly #lockTimeoutMs: number | undefined;

  constructor(opts: VmStoreOptions = {}) {
    this.home = opts.home ?? skiffHome();
    this.vmsDir = vmsDir(this.home);
    this.#lockTimeoutMs = opts.lockTimeoutMs;
    // Records this build checked before are read without zod from now on (src/store/checked.ts).
    useCheckedDir(checkedDir(this.home));
  }

  paths(id: string): VmPaths {
    return vmPaths(this.home, checkId(id));
  }

  /**
   * Claim `spec.name` and make the VM's directory with its config. The VM is
   * incomplete until `commit(id)`: fill in disks and keys in between.
   */
  async create(spec: MachineSpec, extra: CreateExtra = {}): Promise<VmRecord> {
    checkSocketPathLength(this.home);
    await mkdir(this.vmsDir, { recursive: true, mode: 0o700 });
    return withLock("names", () => this.#createLocked(spec, extra), {
      home: this.home,
      purpose: `create VM ${spec.name}`,
      ...(this.#lockTimeoutMs === undefined ? {} : { timeoutMs: this.#lockTimeoutMs }),
    });
  }

  async #createLocked(spec: MachineSpec, extra: CreateExtra): Promise<VmRecord> {
    const { vms, broken } = await this.scan();
    const brokenTaken = broken.find((vm) => vm.name === spec.name);
    if (brokenTaken !== undefined) {
      throw new SkiffError("ERR_SKIFF_NAME_IN_USE", `a broken VM holds the name "${spec.name}" (id ${brokenTaken.id}: ${brokenTaken.reason})`, {
        hint: `remove it with \`skiff rm -f ${spec.name}\` or choose another name`,
        place: spec.name,
        details: { name: spec.name, id: brokenTaken.id },
      });
    }
    const taken = vms.find((vm) => vm.name === spec.name);
    if (taken) {
      const marker = taken.complete ? undefined : await readMarker(taken.paths.creating);
      if (taken.complete || marker === undefined || identityAlive(marker.creator)) {
        throw new SkiffError("ERR_SKIFF_NAME_IN_USE", `a VM named "${spec.name}" already exists (id ${taken.id})`, {
          hint: taken.complete ? `remove it with \`skiff rm ${spec.name}\` or choose another name` : "it is being created right now; choose another name",
          place: spec.name,
          details: { name: spec.name, id: taken.id },
        });
      }
      // Its creator died half-way: the name was never really taken.
      await this.#discard(taken.id, taken.id);
    }
    const id = await this.#newId();
    const temp = join(this.vmsDir, `.tmp-${id}`);
    const paths = vmPaths(this.home, id);
    const createdAt = new Date().toISOString();
    const marker: CreatingMarker = { creator: currentProcess(), at: createdAt };
    try {
      // 0700: the directory will hold the VM's private keys.
      await mkdir(temp, { mode: 0o700 });
      // A jail user unique on the host (claimed once the directory exists, so the claim is never stale).
      const jail = jailMode() === "root" ? await claimJailIds(this.home, id, (uid) => reapJailUid(uid)) : undefined;
      crashPoint("create:claimed");
      const config: VmConfig = {
        schemaVersion: 1,
        id,
        createdAt,
        spec,
        ...(jail === undefined ? {} : { jail }),
        ...(extra.image === undefined ? {} : { image: extra.image }),
        ...(extra.kernel === undefined ? {} : { kernel: extra.kernel }),
        ...(extra.meta === undefined ? {} : { meta: extra.meta }),
        ...(extra.snapshot === undefined ? {} : { snapshot: extra.snapshot }),
      };
      await writeJsonAtomic(join(temp, vmFiles.creating), marker);
      await writeJsonAtomic(join(temp, vmFiles.config), config);
      await rename(temp, paths.dir);
      await syncDir(this.vmsDir);
      return { id, name: spec.name, paths: withAgentPorts(paths, agentPortCount(spec.memoryMiB)), config, complete: false };
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  }

  async #newId(): Promise<string> {
    for (;;) {
      const id = crypto().randomBytes(vmIdLength / 2).toString("hex");
      if (!(await pathExists(join(this.vmsDir, id)))) return id;
    }
  }

  /**
   * The VM's jail user, handed out now if it has none (a VM made by a skiff
   * without jails, or without root): the one time config.json is rewritten.
   */
  async ensureJailIds(id: string): Promise<VmConfig> {
    const config = await this.readConfig(id);
    if (config.jail !== undefined || jailMode() !== "root") return config;
    return withLock(
      "names",
      async () => {
        const fresh = await this.readConfig(id);
        if (fresh.jail !== undefined) return fresh;
        const jail = await claimJailIds(this.home, id, (uid) => reapJailUid(uid));
        const next = { ...fresh, jail };
        await writeJsonAtomic(this.paths(id).config, next);
        return next;
      },
      { home: this.home, purpose: "give a VM a jail user" },
    );
  }

  /** A VM that has never run takes a boot snapshot's disk as its own (src/snapshot/boot.ts); nothing else changes config. */
  async setSnapshot(id: string, snapshot: SnapshotRef): Promise<VmConfig> {
    const next = { ...(await this.readConfig(id)), snapshot };
    await writeJsonAtomic(this.paths(id).config, next);
    return next;
  }

  /**
   * Set (a string) or remove (null) some of the VM's labels, the others kept:
   * labels are the one part of config.json that is the user's to change
   * after creation (the SDK's sandbox deadline lives in one). The caller holds the VM's lock.
   */
  async setLabels(id: string, changes: Record<string, string | null>): Promise<VmConfig> {
    const config = await this.readConfig(id);
    const labels = { ...config.spec.labels };
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) delete labels[key];
      else labels[key] = value;
    }
    const next = { ...config, spec: { ...config.spec, labels } };
    await writeJsonAtomic(this.paths(id).config, next);
    return next;
  }

  /** Mark a created VM complete. */
  async commit(id: string): Promise<void> {
    const paths = this.paths(id);
    if (!(await pathExists(paths.dir))) throw vmNotFound(id);
    await rm(paths.creating, { force: true });
    await syncDir(paths.dir);
  }

  /** Every VM directory: sound ones (complete or not) and broken ones. */
  async scan(): Promise<{ vms: VmRecord[]; broken: BrokenVm[] }> {
    const vms: VmRecord[] = [];
    const broken: BrokenVm[] = [];
    // All at once: `ps` of many VMs waits for one round of reads, not one per file.
    for (const entry of await Promise.all((await this.#ids()).map((id) => this.#read(id)))) {
      if (entry === undefined) continue;
      if (isBroken(entry)) broken.push(entry);
      else vms.push(entry);
    }
    // Oldest first. createdAt is toISOString's (fixed width), so code-point order is time order, as
    // localeCompare's was; the first localeCompare in a process sets up ICU's collator, ~15 ms of `ps`.
    vms.sort((a, b) => (a.config.createdAt < b.config.createdAt ? -1 : a.config.createdAt > b.config.createdAt ? 1 : 0));
    broken.sort((a, b) => (a.name ?? a.id).localeCompare(b.name ?? b.id));
    return { vms, broken };
  }

  /** One VM directory, every record checked; undefined when it is gone (removed meanwhile). */
  async #read(id: string): Promise<VmRecord | BrokenVm | undefined> {
    const paths = vmPaths(this.home, id);
    const config = await readRecord(paths.config, vmConfigRecord);
    if (config === undefined) {
      // Renamed away by a concurrent rm, or deleted by hand (then the directory is still here).
      return (await pathExists(paths.dir)) ? brokenVm(id, paths, "config.json: missing") : undefined;
    }
    if (!config.ok) return brokenVm(id, paths, config.reason, { name: nameIn(config.raw) });
    const name = config.value.spec.name;
    if (config.value.id !== id) return brokenVm(id, paths, `config.json: names id ${JSON.stringify(config.value.id)}, not its directory's`, { name });
    const known = { name, config: config.value };
    const marker = await readRecord(paths.creating, creatingMarkerRecord);
    if (marker !== undefined && !marker.ok) return brokenVm(id, paths, marker.reason, known);
    const state = await readRecord(paths.state, vmStateRecord);
    if (state !== undefined && !state.ok) return brokenVm(id, paths, state.reason, known);
    return { id, name, paths: withAgentPorts(paths, agentPortCount(config.value.spec.memoryMiB)), config: config.value, complete: marker === undefined };
  }

  /**
   * Sound VMs, oldest first: complete ones, or with `includeIncomplete`
   * everything that holds a name, addresses, ports or volumes: also VMs
   * being created and broken VMs whose config.json is still sound (what
   * they hold is theirs until they are removed).
   */
  async list(opts: { includeIncomplete?: boolean } = {}): Promise<VmRecord[]> {
    const { vms, broken } = await this.scan();
    if (opts.includeIncomplete !== true) return vms.filter((vm) => vm.complete);
    const holders = broken.flatMap((b) => (b.config === undefined ? [] : [{ id: b.id, name: b.config.spec.name, paths: b.paths, config: b.config, complete: true }]));
    return [...vms, ...holders];
  }

  /**
   * A VM by exact name, exact id, or unique id prefix; undefined if none.
   * A broken VM is ERR_SKIFF_STATE_CORRUPT with the hint to remove it
   * (`lookup` returns it instead).
   */
  async find(nameOrIdPrefix: string): Promise<VmRecord | undefined> {
    const vm = await this.lookup(nameOrIdPrefix);
    if (vm !== undefined && isBroken(vm)) throw vm.error;
    return vm;
  }

  /** Like `find`, but a broken VM is returned, for `rm` (the one verb a broken VM takes). */
  async lookup(nameOrIdPrefix: string): Promise<VmRecord | BrokenVm | undefined> {
    const { vms, broken } = await this.scan();
    const all = [...vms, ...broken];
    const exact =
      vms.find((vm) => vm.name === nameOrIdPrefix) ?? broken.find((vm) => vm.name === nameOrIdPrefix) ?? all.find((vm) => vm.id === nameOrIdPrefix);
    const byPrefix = () => {
      if (!/^[0-9a-f]+$/.test(nameOrIdPrefix)) return undefined;
      const matches = all.filter((vm) => vm.id.startsWith(nameOrIdPrefix));
      if (matches.length > 1) {
        throw new SkiffError("ERR_SKIFF_USAGE", `"${nameOrIdPrefix}" matches ${matches.length} VMs: ${matches.map((vm) => vm.name ?? vm.id).join(", ")}`, {
          hint: "use the VM's name or more characters of its id",
          place: nameOrIdPrefix,
        });
      }
      return matches[0];
    };
    const vm = exact ?? byPrefix();
    if (vm !== undefined && !isBroken(vm) && !vm.complete) {
      // A creation whose creator died is debris for gc, not a VM.
      const marker = await readMarker(vm.paths.creating);
      if (marker !== undefined && !identityAlive(marker.creator)) return undefined;
      throw new SkiffError("ERR_SKIFF_VM_BUSY", `VM "${vm.name}" is still being created`, {
        hint: "wait for the command creating it to finish, then retry",
        details: { id: vm.id },
      });
    }
    return vm;
  }

  async get(nameOrIdPrefix: string): Promise<VmRecord> {
    const vm = await this.find(nameOrIdPrefix);
    if (vm === undefined) throw vmNotFound(nameOrIdPrefix);
    return vm;
  }

  /** Delete a VM's directory and everything in it, and give back its jail user; false if it was already gone. */
  async remove(id: string): Promise<boolean> {
    return this.#discard(checkId(id), id);
  }

  /**
   * Remove directory `entry` of VM `id` (its own, or `.tmp-<id>` while being
   * made) and give back the jail user it claimed. Only when this removed it:
   * an entry gone already was removed by someone who gives the uid back
   * itself, or renamed by its create from `.tmp-<id>` to `<id>` after gc
   * listed it. Given back by the VM's id then, the claim of a VM that lives
   * went, its uid went to the next VM made, and that VM's start took its
   * twin's QEMU for its own (16 `run -d` at once: ERR_SKIFF_QMP, ENOENT).
   */
  async #discard(entry: string, id: string): Promise<boolean> {
    const config = await this.#configIn(entry);
    const trash = await this.#trash(entry);
    if (trash === undefined) return false;
    crashPoint("rm:trashed");
    // The claim goes before the files. Killed between the two, the trash is left, and gc empties it (giving the
    // claim back again finds nothing); the other order, killed once the trash was deleted, left a claim that
    // nothing would ever find (a `run --rm` killed from outside, test/e2e/killpoints.test.ts).
    await this.#releaseJail(config, id);
    crashPoint("rm:released");
    await rm(trash, { recursive: true, force: true });
    return true;
  }

  /** What config.json in directory `entry` of vms/ says, if it can be read. */
  #configIn(entry: string): Promise<Partial<VmConfig> | undefined> {
    return readJsonIfExists<Partial<VmConfig>>(join(this.vmsDir, entry, vmFiles.config)).catch(() => undefined);
  }

  /** Give back the jail user of VM `id`, whose directory is gone; `config` is what it said. */
  async #releaseJail(config: Partial<VmConfig> | undefined, id: string): Promise<void> {
    const uid = config?.jail?.uid;
    if (typeof uid === "number") await releaseJailIds(this.home, id, uid);
    // No config: killed before writing it, maybe after claiming a uid, which is then found by the VM's id.
    else if (config === undefined && jailMode() === "root") await releaseJailIds(this.home, id);
  }

  /** Rename directory `entry` out of the way (`.trash-…`): the removal's atomic step. Undefined if it was gone already. */
  async #trash(entry: string): Promise<string | undefined> {
    const trash = join(this.vmsDir, `.trash-${entry.replace(/^\./, "")}-${crypto().randomBytes(4).toString("hex")}`);
    try {
      await rename(join(this.vmsDir, entry), trash);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return undefined;
      throw err;
    }
    return trash;
  }

  /** The VM's last known state ({} before its first run); ERR_SKIFF_STATE_CORRUPT when state.json fails its check. */
  async readState(id: string): Promise<VmState> {
    return (await this.#readState(id)).value;
  }

  async #readState(id: string): Promise<{ value: VmState; raw: Record<string, unknown> }> {
    const read = await readRecord(this.paths(id).state, vmStateRecord);
    if (read === undefined) return { value: {}, raw: {} };
    if (!read.ok) throw brokenVm(id, this.paths(id), read.reason).error;
    return read;
  }

  async readConfig(id: string): Promise<VmConfig> {
    const paths = this.paths(id);
    const read = await readRecord(paths.config, vmConfigRecord);
    if (read === undefined) throw vmNotFound(id);
    if (!read.ok) throw brokenVm(id, paths, read.reason, { name: nameIn(read.raw) }).error;
    return read.value;
  }

  /**
   * Merge `patch` into state.json (a key set to undefined is removed), or
   * replace it with `update(old)`. Serialised per VM, so concurrent updaters
   * never lose each other's writes. Keys this skiff does not know (a newer
   * one's) are kept.
   */
  async updateState(id: string, patch: Partial<VmState> | ((state: VmState) => VmState)): Promise<VmState> {
    const paths = this.paths(id);
    return withLock(
      `state-${id}`, // vmLockPattern knows this name
      async () => {
        if (!(await pathExists(paths.dir))) throw vmNotFound(id);
        const old = await this.#readState(id);
        const next = typeof patch === "function" ? patch(old.value) : { ...old.value, ...patch };
        await writeJsonAtomic(paths.state, { ...unknownKeys(old.raw, (await import("./schema.js")).vmStateSchema), ...next });
        return JSON.parse(JSON.stringify(next)) as VmState;
      },
      { home: this.home },
    );
  }

  /**
   * Remove what crashed commands left behind: VM directories whose creator
   * died before `commit`, half-built `.tmp-` and half-deleted `.trash-`
   * directories, and their jail users' claims. A `.tmp-` directory that has
   * no marker yet is a creation under way while the "names" lock is held
   * (create makes it, claims, writes the marker and renames under that
   * lock), so it goes only when that lock is free: at once after a kill,
   * never under a live creator. The lock files of VMs that are gone go too.
   * Returns the entries removed.
   */
  async gc(): Promise<string[]> {
    const removed: string[] = [];
    let names: LockHandle | undefined;
    pruneChecked(checkedDir(this.home));
    try {
      for (const entry of await readdirOrEmpty(this.vmsDir)) {
        const dir = join(this.vmsDir, entry);
        const isTrash = entry.startsWith(".trash-");
        const isTemp = entry.startsWith(".tmp-");
        if (!isTrash && !isTemp && !idPattern.test(entry)) continue;
        if (!isTrash) {
          const marker = await readMarker(join(dir, vmFiles.creating));
          if (marker === undefined && !isTemp) continue; // committed
          if (marker !== undefined && identityAlive(marker.creator)) continue;
          if (marker === undefined) {
            names ??= await tryLock("names", { home: this.home, purpose: "remove half-made VM directories" });
            if (names === undefined) continue;
          }
        }
        if (isTrash) await this.#emptyTrash(entry);
        else if (!(await this.#discard(entry, entry.replace(/^\.tmp-/, "")))) continue;
        removed.push(entry);
      }
    } finally {
      await names?.release();
    }
    await this.#removeOrphanLocks();
    return removed;
  }

  /**
   * Finish a removal killed after its directory became `.trash-…`: the jail
   * user (as remove does, before the files; gone already if remove got that
   * far), then the directory.
   */
  async #emptyTrash(entry: string): Promise<void> {
    const config = await this.#configIn(entry);
    const id = trashPattern.exec(entry)?.[1];
    if (id !== undefined) await this.#releaseJail(config, id);
    await rm(join(this.vmsDir, entry), { recursive: true, force: true });
  }

  /**
   * Lock files of VMs that are gone: ten per VM ever made would pile up.
   * Each goes only while held by us (removeLockFiles), so a process still
   * waiting on one just locks a fresh file.
   */
  async #removeOrphanLocks(): Promise<void> {
    const live = new Set(await this.#ids());
    const orphans = (await lockFileNames(this.home)).filter((name) => {
      const id = vmLockPattern.exec(name)?.[1];
      return id !== undefined && !live.has(id);
    });
    if (orphans.length > 0) removeLockFiles(orphans, { home: this.home });
  }

  async #ids(): Promise<string[]> {
    return (await readdirOrEmpty(this.vmsDir)).filter((entry) => idPattern.test(entry));
  }
}

function checkId(id: string): string {
  if (!idPattern.test(id)) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `not a VM id: ${JSON.stringify(id)}`);
  }
  return id;
}

export function vmNotFound(what: string): SkiffError {
  return new SkiffError("ERR_SKIFF_VM_NOT_FOUND", `no such VM: ${what}`, {
    hint: "list VMs with `skiff ps -a`",
    place: what,
  });
}

/** The creation marker, or undefined if absent or failing its check (then scan reports the VM broken). */
async function readMarker(path: string): Promise<CreatingMarker | undefined> {
  const read = await readRecord(path, creatingMarkerRecord);
  return read?.ok === true ? read.value : undefined;
}


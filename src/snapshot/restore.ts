/**
 * A new VM from a snapshot: the same machine (spec, image, kernel) with a
 * name, hostname, addresses and published ports of its own. Its overlay is
 * backed by the snapshot's disk, so a restore copies no disk, and each
 * named volume the source had is a private clone of its captured state
 * (volumes.ts); its agent keys
 * are the snapshot's, because the guest in the snapshot's RAM trusts those
 * (the agent channel is a socket only skiff's owner reaches, so clones
 * sharing them gives nothing away). The start itself (QEMU with
 * -incoming, the state loaded, the new identity sent) is Skiff.start's,
 * with `resume` (launch.ts, resume.ts).
 */
import { existsSync } from "node:fs";
import { copyFile, readFile, rename, rm, writeFile } from "node:fs/promises";
import { crypto } from "../util/builtins.js";
import { SkiffError } from "../errors.js";
import type { PortForward } from "../spec/machine.js";
import type { VmRecord } from "../store/store.js";
import { progress, type EngineContext } from "../engine/context.js";
import { createRecord, finishCreate, hostnameFor } from "../engine/create.js";
import { validateName } from "../util/names.js";
import { snapshotFile, type StoredSnapshot } from "./store.js";
import { checkVersions, hostVersions } from "./versions.js";
import type { ResumeSource } from "./resume.js";
import { clonesNote, cloneMounts, layerRefs, makeClones } from "./volumes.js";

export interface RestoreOptions {
  /** The new VM's name (default: a generated one). */
  name?: string;
  hostname?: string;
  /** Published ports (-p); the source's are not taken over: they are bound on the host by the source. */
  forwards?: PortForward[];
  autoRemove?: boolean;
  labels?: Record<string, string>;
  /** As CreateOptions.attach: tie the VM to this process until it detaches. */
  attach?: boolean;
}

/** Refuse a snapshot this host cannot load, naming what differs. */
export async function checkRestorable(ctx: EngineContext, snapshot: StoredSnapshot): Promise<void> {
  const facts = await ctx.hostFacts();
  const here = await hostVersions(facts.qemuBinary, snapshot.kernelPath, ctx.cacheDir);
  checkVersions(`snapshot ${snapshot.name ?? snapshot.id.slice(0, 12)}`, snapshot.versions, here, "snapshots restore only with the QEMU, kernel and skiff that made them: take a new one (`skiff snapshot create`)");
}

/** Make the VM record for a restore (not started). */
export async function createFromSnapshot(ctx: EngineContext, snapshot: StoredSnapshot, opts: RestoreOptions, t0: number): Promise<VmRecord> {
  if (opts.name !== undefined) validateName(opts.name);
  const source = snapshot.spec;
  const requests = (source.networks ?? []).map((a) => ({ network: a.network, ...(a.gateway === undefined ? {} : { gateway: a.gateway }), place: "snapshot" }));
  const record = await createRecord(
    ctx,
    { image: source.image, ...(opts.name === undefined ? {} : { name: opts.name }), networks: requests, ...(source.dns === undefined ? {} : { dns: source.dns }) },
    async (name) => {
      const { networks: _n, restart: _r, ...rest } = source;
      return {
        ...rest,
        ...(source.mounts === undefined ? {} : { mounts: cloneMounts(source.mounts) }),
        name,
        hostname: opts.hostname ?? hostnameFor(name),
        network: source.network.mode === "user" ? { ...source.network, forwards: opts.forwards ?? [], guestForwards: [] } : source.network,
        autoRemove: opts.autoRemove ?? false,
        labels: opts.labels ?? {},
      };
    },
    {
      image: snapshot.image,
      kernel: { version: snapshot.kernelVersion ?? "", path: snapshot.kernelPath },
      snapshot: { id: snapshot.id, disk: snapshotFile(snapshot, "disk"), ...layerRefs(snapshot.dir, snapshot.volumes) },
    },
  );
  const note = clonesNote(snapshot.volumes);
  // Docker users expect a named volume to be shared: said every time, not only on a terminal.
  if (note !== undefined) progress(ctx, record.name, "warning", `${record.name}: ${note}`, t0);
  return finishCreate(ctx, { record, t0, attach: opts.attach === true }, () => standOnSnapshot(ctx, record, snapshot));
}

/**
 * The VM's overlay made (again) on the snapshot's disk, its volume clones
 * on the snapshot's volume layers (volumes.ts), and its agent keys
 * the snapshot's: the guest in the snapshot's RAM trusts those.
 */
export async function standOnSnapshot(ctx: EngineContext, record: VmRecord, snapshot: StoredSnapshot): Promise<void> {
  const { paths } = record;
  for (const file of ["sshKey", "sshPublicKey", "hostKey", "hostPublicKey"] as const) {
    await rm(paths[file], { force: true });
    await copyFile(snapshotFile(snapshot, file), paths[file]);
  }
  const hostKey = (await readFile(paths.hostPublicKey, "utf8")).split(" ").slice(0, 2).join(" ");
  // `skiff ssh-config` pins the host key under the VM's own alias.
  await writeFile(paths.knownHosts, `skiff-${record.name} ${hostKey}\n`, { mode: 0o644 });
  await rm(paths.overlay, { force: true });
  await overlayOn(ctx, snapshot, paths.overlay);
  await makeClones(ctx, record, snapshot.volumes, snapshot.dir);
}

/**
 * A new VM's root disk: an empty qcow2 overlay on the snapshot's disk. qemu-img writes the same bytes for every
 * overlay of one snapshot (the backing file's path and size are all it holds), so the first restore keeps one in the
 * snapshot (overlay.qcow2, 192 KiB) and every later one copies it: starting qemu-img was ~30 ms of every restore and
 * every `run` from a boot snapshot, on the way to QEMU's start (docs/benchmarks.md, "Snapshots").
 */
async function overlayOn(ctx: EngineContext, snapshot: StoredSnapshot, overlay: string): Promise<void> {
  const template = snapshotFile(snapshot, "overlay");
  if (!existsSync(template)) {
    // Made under a name of its own and renamed: a concurrent restore copies a whole one or makes its own.
    const temp = `${template}.tmp-${process.pid}-${crypto().randomBytes(4).toString("hex")}`;
    try {
      await ctx.runner.run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", snapshotFile(snapshot, "disk"), temp], {
        check: true,
        debianPackage: "qemu-utils",
      });
      await rename(temp, template);
    } finally {
      await rm(temp, { force: true });
    }
  }
  await copyFile(template, overlay);
}

/** What the start of a restored VM loads; a snapshot without `mem` has its RAM in the state (capture.ts). */
export function snapshotSource(snapshot: StoredSnapshot): ResumeSource {
  const mem = snapshotFile(snapshot, "mem");
  return {
    state: snapshotFile(snapshot, "state"),
    ...(existsSync(mem) ? { mem } : {}),
    initrd: snapshotFile(snapshot, "initrd"),
    consoleLog: snapshotFile(snapshot, "consoleLog"),
    what: `snapshot ${snapshot.name ?? snapshot.id.slice(0, 12)}`,
  };
}

/** Restoring into a name that is taken fails before anything is made (the store says so too; this says it better). */
export function nameTaken(name: string): SkiffError {
  return new SkiffError("ERR_SKIFF_NAME_IN_USE", `a VM named ${name} exists`, {
    place: "name",
    hint: `choose another name, or remove it first (\`skiff rm -f ${name}\`)`,
  });
}

/**
 * VolumeStore: one directory per named volume under <home>/volumes, holding
 * `volume.json` and the volume's disk, a sparse raw file with an ext4
 * filesystem. A volume is made whole in a hidden temporary directory and
 * renamed into place, so a crash never leaves a half-made volume under a
 * name; the "volumes" lock serialises create, rm and the in-use check at
 * VM start.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, statfs } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import type { Runner } from "../process/runner.js";
import * as z from "zod/v4/mini";
import { syncDir, writeJsonAtomic } from "../store/atomic.js";
import { isBrokenRecord, partitionRecords, readNamedRecord, recordSchema, type BrokenRecord } from "../store/record.js";
import { isoTimeSchema } from "../store/record-schema.js";
import { withLock } from "../store/lock.js";
import { readdirOrEmpty } from "../util/fs.js";
import { namePattern, validateName } from "../util/names.js";
import { formatBytes } from "../util/units.js";

/** volume.json, checked when read back (src/store/record.ts). */
export const volumeRecordSchema = z.object({
  name: z.string().check(z.regex(namePattern, "expected a volume name")),
  /** Size of the disk (the filesystem fills it); the file itself is sparse. */
  sizeBytes: z.number().check(z.int(), z.positive()),
  labels: z.record(z.string(), z.string()),
  createdAt: isoTimeSchema,
});
export type VolumeRecord = z.infer<typeof volumeRecordSchema>;
// zod/mini, as the other records (src/store/record-schema.ts); built here, where `volume create` needs it anyway.
const volumeRecord = recordSchema<VolumeRecord>("volume", async () => volumeRecordSchema);

export const defaultVolumeBytes = 2 ** 30;
/** ext4 with a journal wants a few MiB; below this mke2fs makes a filesystem too small to be of use. */
export const minVolumeBytes = 16 * 2 ** 20;

const recordFile = "volume.json";
const diskFile = "disk.ext4";

/** Volume names follow VM names: they end up in paths and in errors. */
export function validateVolumeName(name: string, place = "name"): string {
  return validateName(name, place, "volume");
}

export function volumeNotFound(name: string, place = name): SkiffError {
  return new SkiffError("ERR_SKIFF_VOLUME_NOT_FOUND", `no volume named "${name}"`, {
    place,
    hint: `see \`skiff volume ls\`, or create it with \`skiff volume create ${name}\``,
  });
}

export class VolumeStore {
  readonly dir: string;

  constructor(readonly home: string) {
    this.dir = join(home, "volumes");
  }

  /** The volume's ext4 disk, attached to VMs as a raw virtio-blk device. */
  diskPath(name: string): string {
    return join(this.dir, name, diskFile);
  }

  /** Every volume: sound records by name, and those whose record fails its check apart. */
  async scan(): Promise<{ records: VolumeRecord[]; broken: BrokenRecord[] }> {
    const names = (await readdirOrEmpty(this.dir)).filter((n) => !n.startsWith(".") && namePattern.test(n));
    return partitionRecords(await Promise.all(names.map((n) => this.lookup(n))));
  }

  /** Volumes whose record is sound (`scan` has the broken ones). */
  async list(): Promise<VolumeRecord[]> {
    return (await this.scan()).records;
  }

  /** A volume by name; one whose record fails its check is ERR_SKIFF_STATE_CORRUPT (`lookup` returns it). */
  async find(name: string): Promise<VolumeRecord | undefined> {
    const entry = await this.lookup(name);
    if (entry !== undefined && isBrokenRecord(entry)) throw entry.error;
    return entry;
  }

  /** Like `find`, but a broken record is returned, for `volume rm`. */
  async lookup(name: string): Promise<VolumeRecord | BrokenRecord | undefined> {
    if (!namePattern.test(name)) return undefined;
    return readNamedRecord(join(this.dir, name, recordFile), volumeRecord, { what: "volume", name, removeHint: `skiff volume rm ${name}` });
  }

  async get(name: string, place = name): Promise<VolumeRecord> {
    const record = await this.find(name);
    if (record === undefined) throw volumeNotFound(name, place);
    return record;
  }

  /**
   * Make a volume: a sparse file of `sizeBytes`, an ext4 filesystem on it
   * (mke2fs works on a plain file, no root or loop device needed), then the
   * whole directory renamed into place. Call holding `locked`.
   */
  async create(record: VolumeRecord, runner: Runner): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const temp = join(this.dir, `.new-${record.name}-${randomBytes(4).toString("hex")}`);
    try {
      await mkdir(temp, { mode: 0o700 });
      const disk = await open(join(temp, diskFile), "wx", 0o600);
      try {
        await disk.truncate(record.sizeBytes);
      } catch (err) {
        if (errnoOf(err) !== "EFBIG") throw err;
        throw new SkiffError("ERR_SKIFF_USAGE", `a volume of ${formatBytes(record.sizeBytes)} is larger than the largest file the host's filesystem holds`, {
          place: "sizeBytes",
          hint: `give a smaller size; the volume is one file in ${this.dir} (ext4 with 4 KiB blocks takes files below 16 TiB)`,
        });
      } finally {
        await disk.close();
      }
      // No reserved blocks: a data volume has no root daemons to save space for.
      await runner.run("mke2fs", ["-q", "-F", "-t", "ext4", "-m", "0", "-L", record.name.slice(0, 16), join(temp, diskFile)], {
        check: true,
        debianPackage: "e2fsprogs",
        timeoutMs: 120_000,
      });
      await writeJsonAtomic(join(temp, recordFile), record);
      try {
        await rename(temp, join(this.dir, record.name));
      } catch (err) {
        const code = errnoOf(err);
        if (code === "ENOTEMPTY" || code === "EEXIST") throw nameTaken(record.name);
        throw err;
      }
      await syncDir(this.dir);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** Size and free space of the filesystem volumes live on (made if need be, so there is one to ask). */
  async space(): Promise<{ totalBytes: number; freeBytes: number }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const fs = await statfs(this.dir);
    return { totalBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize };
  }

  /** Remove a volume and its data. The directory is renamed away first, so a crash midway leaves no half volume under the name. */
  async remove(name: string): Promise<void> {
    const doomed = join(this.dir, `.rm-${name}-${randomBytes(4).toString("hex")}`);
    try {
      await rename(join(this.dir, name), doomed);
    } catch (err) {
      if (errnoOf(err) === "ENOENT") return;
      throw err;
    }
    await rm(doomed, { recursive: true, force: true });
  }

  /** Leftovers of creates and removes a crash interrupted. */
  async sweep(): Promise<void> {
    for (const n of await readdirOrEmpty(this.dir)) {
      if (n.startsWith(".new-") || n.startsWith(".rm-")) await rm(join(this.dir, n), { recursive: true, force: true });
    }
  }

  /** Run `fn` holding the lock every change to the set of volumes, and every attach, takes. */
  locked<T>(purpose: string, fn: () => Promise<T>): Promise<T> {
    return withLock("volumes", fn, { home: this.home, purpose, timeoutMs: 60_000 });
  }
}

export function nameTaken(name: string): SkiffError {
  return new SkiffError("ERR_SKIFF_VOLUME_IN_USE", `a volume named "${name}" already exists`, {
    place: name,
    hint: `see \`skiff volume inspect ${name}\`, or remove it with \`skiff volume rm ${name}\``,
  });
}

/**
 * NetworkStore: one JSON file per network under <home>/networks, written
 * atomically; the "networks" lock serialises create and rm, so two networks
 * never get one name or overlapping subnets. Runtime files of a network
 * (a link network's sockets) live in <home>/networks/<name>.d. Records are
 * checked when read (schema.ts); one that fails is broken: listed apart,
 * refused with its reason, removable with `network rm`.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { writeJsonAtomic } from "../store/atomic.js";
import { isBrokenRecord, partitionRecords, readNamedRecord, recordSchema, type BrokenRecord } from "../store/record.js";
import { withLock } from "../store/lock.js";
import { networksDir } from "../store/paths.js";
import { readdirOrEmpty } from "../util/fs.js";
import { namePattern } from "../util/names.js";
import type { NetworkRecord } from "./types.js";

/** A network record's schema, loaded only when a record has to be checked (src/store/record.ts says when). */
const networkRecord = recordSchema<NetworkRecord>("network", async () => (await import("./schema.js")).networkRecordSchema);

// The name check is pure and has a light module of its own (the CLI checks --network before loading the engine).
export { reservedNetworkNames, validateNetworkName } from "./names.js";

export class NetworkStore {
  readonly dir: string;

  constructor(readonly home: string) {
    this.dir = networksDir(home);
  }

  #file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /** Where a network keeps runtime files (sockets). */
  runDir(name: string): string {
    return join(this.dir, `${name}.d`);
  }

  /** Every network: sound records by name, and those whose record fails its check apart. */
  async scan(): Promise<{ records: NetworkRecord[]; broken: BrokenRecord[] }> {
    const names = (await readdirOrEmpty(this.dir)).filter((f) => f.endsWith(".json") && !f.startsWith(".")).map((f) => f.slice(0, -".json".length));
    return partitionRecords(await Promise.all(names.map((n) => this.lookup(n))));
  }

  /** Networks whose record is sound (`scan` has the broken ones). */
  async list(): Promise<NetworkRecord[]> {
    return (await this.scan()).records;
  }

  /** A network by name; one whose record fails its check is ERR_SKIFF_STATE_CORRUPT (`lookup` returns it). */
  async find(name: string): Promise<NetworkRecord | undefined> {
    const entry = await this.lookup(name);
    if (entry !== undefined && isBrokenRecord(entry)) throw entry.error;
    return entry;
  }

  /** Like `find`, but a broken record is returned, for `network rm`. */
  async lookup(name: string): Promise<NetworkRecord | BrokenRecord | undefined> {
    if (!namePattern.test(name)) return undefined;
    return readNamedRecord(this.#file(name), networkRecord, { what: "network", name, removeHint: `skiff network rm ${name}` });
  }

  async get(name: string, place = name): Promise<NetworkRecord> {
    const record = await this.find(name);
    if (record === undefined) {
      throw new SkiffError("ERR_SKIFF_NETWORK_NOT_FOUND", `no network named "${name}"`, {
        place,
        hint: `see \`skiff network ls\`, or create it with \`skiff network create ${name}\``,
      });
    }
    return record;
  }

  /** Make the records' directory (the sweep's sign that this home may have bridges: see sweepNetworks). */
  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async write(record: NetworkRecord): Promise<void> {
    await this.ensureDir();
    await writeJsonAtomic(this.#file(record.name), record);
  }

  async remove(name: string): Promise<void> {
    await rm(this.#file(name), { force: true });
    await rm(this.runDir(name), { recursive: true, force: true });
  }

  /** Run `fn` holding the lock every change to the set of networks takes. */
  locked<T>(purpose: string, fn: () => Promise<T>): Promise<T> {
    return withLock("networks", fn, { home: this.home, purpose });
  }
}

/** The lock under which addresses on one network are handed out. */
export function networkLockName(name: string): string {
  return `net-${name}`;
}

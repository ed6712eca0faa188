/**
 * Records read back from disk (a VM's config.json and state.json, network
 * and volume records, snapshots') are checked against their zod schema
 * once, here at the edge, so the code behind it can trust their types. A
 * record that is missing, truncated, not JSON or of the wrong shape comes
 * back as a short reason ("state.json: qemu: expected an object, got a
 * string"), never as a throw: one bad file must make its own VM (network,
 * volume) unusable, not every command that lists them all.
 *
 * Unknown keys are accepted and left out of the typed value, never an
 * error: a record written by a newer skiff (or an older one, for keys since
 * removed) must not make this one call the VM broken, or a downgrade would
 * break every VM. The one record rewritten in place (state.json) keeps them
 * (`unknownKeys`), so a newer skiff's facts survive an older one's update.
 *
 * zod and the schemas are loaded only for a record that has to be checked
 * (src/store/record-schema.ts): for one this build of skiff has checked
 * before, byte for byte, what the check returned is remembered
 * (src/store/checked.ts). So `skiff ps` of VMs it has seen before loads no
 * zod (docs/benchmarks.md, "CLI start").
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import type * as z from "zod/v4/mini";
import { errnoOf, SkiffError } from "../errors.js";
import { checkedValue, noteChecked } from "./checked.js";

export type RecordRead<T> =
  | { ok: true; value: T; raw: Record<string, unknown> }
  /** `raw`: the parsed JSON when the file was JSON at all, for what can still be learnt from it (a name). */
  | { ok: false; reason: string; raw?: unknown };

/** A record's schema, loaded when a record of it has to be checked; `id` names it in what is known good. */
export interface RecordSchema<T> {
  readonly id: string;
  load(): Promise<z.core.$ZodType<T>>;
}

/** A RecordSchema whose zod schema `load` imports (once) when first needed. */
export function recordSchema<T>(id: string, load: () => Promise<z.core.$ZodType<T>>): RecordSchema<T> {
  let loaded: Promise<z.core.$ZodType<T>> | undefined;
  return { id, load: () => (loaded ??= load()) };
}

/** The record in `text`, checked, or what this build's check of the same text returned before. */
async function checked<T>(text: string, schema: RecordSchema<T>, file: string): Promise<RecordRead<T>> {
  const known = checkedValue(schema.id, text);
  if (known !== undefined) return { ok: true, value: known as T, raw: JSON.parse(text) as Record<string, unknown> };
  const [{ parseRecord }, zodSchema] = await Promise.all([import("./record-schema.js"), schema.load()]);
  const read = parseRecord(text, zodSchema, file);
  // Remembered only when JSON gives the value back exactly (a record's checked value always is: no dates, maps or -0).
  if (read.ok && jsonExact(read.value)) noteChecked(schema.id, text, JSON.stringify(read.value));
  return read;
}

/** Whether JSON.parse(JSON.stringify(value)) is a value equal to `value`, in every key and its order. */
function jsonExact(value: unknown): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0);
  if (Array.isArray(value)) return value.every(jsonExact);
  if (typeof value !== "object") return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  // An own "__proto__" (allowed in user maps) comes back from JSON.parse as an own key too; a key whose value is undefined would not.
  return Object.values(value).every((v) => v !== undefined && jsonExact(v));
}

/**
 * Read and check the record at `path`; undefined when there is no such file.
 * Read synchronously: a record is a few KiB on a local disk, and
 * fs/promises costs the main thread more than the read itself (open, fstat,
 * read and close, each a trip through the thread pool): `skiff ps` of 10 VMs
 * reads ~100 records, 20 ms that way against 1 ms (docs/benchmarks.md, "CLI start").
 */
export async function readRecord<T>(path: string, schema: RecordSchema<T>): Promise<RecordRead<T> | undefined> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT") return undefined;
    return { ok: false, reason: `${basename(path)}: cannot be read (${code ?? String(err)})` };
  }
  return checked(text, schema, basename(path));
}

/** The keys of `raw` that `schema` does not know: kept when the record is written back. */
export function unknownKeys(raw: Record<string, unknown>, schema: z.core.$ZodObject): Record<string, unknown> {
  return Object.fromEntries(Object.entries(raw).filter(([key]) => !(key in schema._zod.def.shape)));
}

/** ERR_SKIFF_STATE_CORRUPT for a record that failed its check. */
export function corruptRecord(what: string, reason: string, opts: { hint: string; place?: string; details?: Record<string, unknown> }): SkiffError {
  return new SkiffError("ERR_SKIFF_STATE_CORRUPT", `${what} is broken: ${reason}`, {
    hint: opts.hint,
    ...(opts.place === undefined ? {} : { place: opts.place }),
    ...(opts.details === undefined ? {} : { details: opts.details }),
  });
}

/** A named record (a network's, a volume's) that failed its check: listed apart, removable by its name. */
export interface BrokenRecord {
  broken: true;
  name: string;
  reason: string;
  /** ERR_SKIFF_STATE_CORRUPT: what every use of it but rm meets. */
  error: SkiffError;
}

export function isBrokenRecord(value: object): value is BrokenRecord {
  return "broken" in value;
}

/**
 * The record of `what` named `name` at `path`: its checked value, a
 * BrokenRecord, or undefined when there is none. A record must carry the
 * name it is filed under.
 */
export async function readNamedRecord<T extends { name: string }>(
  path: string,
  schema: RecordSchema<T>,
  opts: { what: string; name: string; removeHint: string },
): Promise<T | BrokenRecord | undefined> {
  const read = await readRecord(path, schema);
  if (read === undefined) return undefined;
  let reason: string;
  if (!read.ok) reason = read.reason;
  else if (read.value.name === opts.name) return read.value;
  else reason = `${basename(path)}: names ${JSON.stringify(read.value.name)}, not ${JSON.stringify(opts.name)}`;
  return {
    broken: true,
    name: opts.name,
    reason,
    error: corruptRecord(`${opts.what} ${opts.name}`, reason, { hint: `remove it with \`${opts.removeHint}\``, place: opts.name, details: { path } }),
  };
}

/** Sound records sorted by name, and the broken ones apart. */
export function partitionRecords<T extends { name: string }>(entries: readonly (T | BrokenRecord | undefined)[]): { records: T[]; broken: BrokenRecord[] } {
  const records: T[] = [];
  const broken: BrokenRecord[] = [];
  for (const entry of entries) {
    if (entry === undefined) continue;
    if (isBrokenRecord(entry)) broken.push(entry);
    else records.push(entry);
  }
  return { records: records.sort((a, b) => a.name.localeCompare(b.name)), broken };
}

/**
 * Records read back from disk (a VM's config.json and state.json, network
 * and volume records) are checked against their zod schema once, here at
 * the edge, so the code behind it can trust their types. A record that is
 * missing, truncated, not JSON or of the wrong shape comes back as a short
 * reason ("state.json: qemu: expected an object, got a string"), never as a
 * throw: one bad file must make its own VM (network, volume) unusable, not
 * every command that lists them all.
 *
 * Unknown keys are accepted and left out of the typed value, never an
 * error: a record written by a newer skiff (or an older one, for keys since
 * removed) must not make this one call the VM broken, or a downgrade would
 * break every VM. The one record rewritten in place (state.json) keeps them
 * (`unknownKeys`), so a newer skiff's facts survive an older one's update.
 *
 * The schemas of the records every `skiff ps` reads (a VM's records, the
 * MachineSpec in its config.json, network attachments, snapshots) are
 * built with zod/mini, not zod's classic API: classic gives every schema
 * object its methods as it is built, which cost `ps` more at start than
 * reading the records (docs/benchmarks.md, "CLI start"). Both share zod's
 * core, so a classic schema may hold a mini one and these functions take
 * either; the messages are the same (English, set here as classic does).
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import * as z from "zod/v4/mini";
import en from "zod/v4/locales/en.js";
import { errnoOf, SkiffError } from "../errors.js";
import { parseUserKeys } from "../util/user-keys.js";

// zod/mini leaves the messages to the caller (classic sets English when loaded).
z.config(en());

export type RecordRead<T> =
  | { ok: true; value: T; raw: Record<string, unknown> }
  /** `raw`: the parsed JSON when the file was JSON at all, for what can still be learnt from it (a name). */
  | { ok: false; reason: string; raw?: unknown };

/**
 * `schemaFor<T>()(schema)` compiles only when the schema yields a `T` and
 * accepts every `T`, so a documented interface and its schema cannot drift
 * apart.
 */
export function schemaFor<T>() {
  return <S extends z.core.$ZodType<T>>(
    schema: S &
      ([T] extends [z.input<S>] ? unknown : "the schema refuses some values of the type") &
      // A key of the type the schema does not know would be dropped on every read.
      ([Exclude<keyof T, keyof z.output<S>>] extends [never] ? unknown : "the schema drops keys of the type"),
  ): S => schema;
}

/** An ISO 8601 time as `toISOString` writes it (ps and inspect compute ages from it). */
export const isoTimeSchema = z.string().check(z.refine((s) => !Number.isNaN(Date.parse(s)), "expected an ISO 8601 time"));
export const portSchema = z.number().check(z.int(), z.gte(0), z.lte(65535));

/** Check parsed JSON against `schema`; `file` names it in the reason. */
export function checkRecord<T>(raw: unknown, schema: z.core.$ZodType<T>, file: string): RecordRead<T> {
  // A VM's environment or labels may hold a key such as `constructor`, which zod's records refuse as such.
  const result = parseUserKeys(raw, (hidden) => z.safeParse(schema, hidden, { reportInput: true }));
  if (result.success) return { ok: true, value: result.data, raw: raw as Record<string, unknown> };
  return { ok: false, reason: `${file}: ${issueText(result.error.issues)}`, raw };
}

/** Parse JSON text and check it; a reason for text that is not JSON. */
export function parseRecord<T>(text: string, schema: z.core.$ZodType<T>, file: string): RecordRead<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: text.trim() === "" ? `${file}: empty` : `${file}: not valid JSON (truncated or garbage)` };
  }
  return checkRecord(raw, schema, file);
}

/**
 * Read and check the record at `path`; undefined when there is no such file.
 * Read synchronously: a record is a few KiB on a local disk, and
 * fs/promises costs the main thread more than the read itself (open, fstat,
 * read and close, each a trip through the thread pool): `skiff ps` of 10 VMs
 * reads ~100 records, 20 ms that way against 1 ms (docs/benchmarks.md, "CLI start").
 */
export async function readRecord<T>(path: string, schema: z.core.$ZodType<T>): Promise<RecordRead<T> | undefined> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT") return undefined;
    return { ok: false, reason: `${basename(path)}: cannot be read (${code ?? String(err)})` };
  }
  return parseRecord(text, schema, basename(path));
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

type Issue = z.core.$ZodIssue;

/** The first problem, short: "spec.name: expected a string, got a number" (and how many more there are). */
function issueText(issues: readonly Issue[]): string {
  const first = issues[0];
  if (first === undefined) return "invalid";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? "s" : ""})` : "";
  return `${first.path.length === 0 ? "" : `${first.path.map(String).join(".")}: `}${issueMessage(first)}${more}`;
}

function issueMessage(issue: Issue): string {
  if (issue.code === "invalid_type") {
    const input = "input" in issue ? issue.input : undefined;
    return input === undefined ? `missing (expected ${article(issue.expected)})` : `expected ${article(issue.expected)}, got ${article(kindOf(input))}`;
  }
  if (issue.code === "invalid_value") return `expected ${issue.values.map((v) => JSON.stringify(v)).join(" or ")}`;
  if (issue.code === "invalid_union") {
    // A discriminated union's issue sits at the discriminator's path, with the whole object as input.
    const key = issue.path.at(-1);
    const input: unknown = "input" in issue ? issue.input : undefined;
    const value = typeof input === "object" && input !== null && key !== undefined ? (input as Record<PropertyKey, unknown>)[key] : input;
    return (issue as { note?: string }).note === "No matching discriminator" ? `unknown value ${JSON.stringify(value)}` : "matches none of the forms it may take";
  }
  return issue.message;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function article(kind: string): string {
  if (kind === "null" || kind === "undefined") return kind;
  return /^[aeiou]/.test(kind) ? `an ${kind}` : `a ${kind}`;
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
  schema: z.core.$ZodType<T>,
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

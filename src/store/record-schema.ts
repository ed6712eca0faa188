/**
 * The zod side of records (src/store/record.ts reads them): the helpers
 * their schemas are built with, and the check itself, with its short
 * reasons ("state.json: qemu: expected an object, got a string").
 *
 * Kept apart from record.ts so that reading a record loads zod only when
 * the record has to be checked: a record skiff has already checked, byte
 * for byte, is known good without it (src/store/checked.ts), and zod with
 * the schemas is most of what `skiff ps` would load (docs/benchmarks.md,
 * "CLI start").
 *
 * The schemas of the records every `skiff ps` reads (a VM's records, the
 * MachineSpec in its config.json, network attachments, snapshots) are
 * built with zod/mini, not zod's classic API: classic gives every schema
 * object its methods as it is built, which cost `ps` more at start than
 * reading the records. Both share zod's core, so a classic schema may hold
 * a mini one and these functions take either; the messages are the same
 * (English, set here as classic does).
 */
import * as z from "zod/v4/mini";
import en from "zod/v4/locales/en.js";
import { parseUserKeys } from "../util/user-keys.js";
import type { RecordRead } from "./record.js";

// zod/mini leaves the messages to the caller (classic sets English when loaded).
z.config(en());

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

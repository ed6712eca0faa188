/**
 * Records this build of skiff has checked, remembered by their bytes with
 * what the check made of them, so that reading one again needs neither zod
 * nor the schemas: loading those is ~50 ms of every command that reads
 * records (`ps`, `exec`, `stop`, ...), more than reading the records
 * (docs/benchmarks.md, "CLI start"). src/store/record.ts asks before it
 * checks and notes what passed.
 *
 * An entry is a file in the home's `checked/` named by the SHA-256 of the
 * build, the schema's id and the record's bytes, holding the checked value
 * as JSON: what zod returned, defaults filled in, unknown keys left out,
 * keys in the schema's order. A record changed in any byte, a record of
 * another schema, or any record under a new build (whose schemas may have
 * changed) is not found, and is checked. Only the owner can write there
 * (0700, like the rest of the home), so an entry vouches for nothing that
 * skiff did not check itself; one that does not parse is not used.
 *
 * Only a built skiff uses it: its build is named by dist/.build-stamp,
 * which the build removes before it starts and writes when it has
 * finished (package.json's prebuild, scripts/postbuild.mjs), so code that
 * is half rebuilt never trusts an older build's entries. skiff run from
 * src/ (vitest) checks every record, unless a test names a build.
 *
 * The directory is emptied when it holds more than `limit` entries
 * (`pruneChecked`, from the store's gc): state.json changes on every start
 * and stop, and an entry costs one check to make again.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { crypto } from "../util/builtins.js";
import { errnoOf } from "../errors.js";
import { packageRoot } from "../util/package-root.js";

const limit = 1024;

let dir: string | undefined;
/**
 * The build this code is, read when it is loaded (not at its first record): a long-running `skiff serve` started
 * before a rebuild must not vouch for records under the new build's name. null: this is not a built skiff.
 */
let build: string | null = stampedBuild();

/** Remember checked records in `dir` from now on (the store of a home calls it); `build` names the build (tests). */
export function useCheckedDir(where: string, opts: { build?: string } = {}): void {
  dir = where;
  if (opts.build !== undefined) build = opts.build;
}

/** Forget where, and go back to this code's own build (tests). */
export function resetChecked(): void {
  dir = undefined;
  build = stampedBuild();
}

function stampedBuild(): string | null {
  if (!fileURLToPath(import.meta.url).split(sep).includes("dist")) return null;
  try {
    return readFileSync(join(packageRoot(), "dist", ".build-stamp"), "utf8");
  } catch {
    return null; // mid-build, or a dist/ never stamped: check every record
  }
}

function entry(schemaId: string, text: string): string | undefined {
  const id = build;
  if (dir === undefined || id === null) return undefined;
  const hash = crypto().createHash("sha256").update(id).update("\0").update(schemaId).update("\0").update(text).digest("hex");
  return join(dir, hash);
}

/** What this build's check of a record of schema `schemaId` with exactly this text returned (as JSON), if it passed before. */
export function checkedValue(schemaId: string, text: string): unknown {
  const path = entry(schemaId, text);
  if (path === undefined) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}

/** Note what the check of a record of schema `schemaId` with this text returned. Best effort: a failure only costs a check. */
export function noteChecked(schemaId: string, text: string, valueJson: string): void {
  const path = entry(schemaId, text);
  if (path === undefined || dir === undefined) return;
  const temp = `${path}.tmp-${process.pid}`;
  try {
    try {
      writeFileSync(temp, valueJson, { mode: 0o600 });
    } catch (err) {
      if (errnoOf(err) !== "ENOENT") return;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(temp, valueJson, { mode: 0o600 });
    }
    // Whole or not at all for a reader; a second writer of the same entry writes the same bytes.
    renameSync(temp, path);
  } catch {
    rmSync(temp, { force: true });
  }
}

/** Empty the directory when it holds more than `limit` entries. */
export function pruneChecked(where: string): void {
  let names: string[];
  try {
    names = readdirSync(where);
  } catch {
    return;
  }
  if (names.length <= limit) return;
  for (const name of names) rmSync(join(where, name), { force: true });
}

/**
 * State files are replaced, never edited in place: a reader (or a crash)
 * sees the old file or the new one, never half of either. The fsyncs make
 * that hold across power loss too, not only across process crashes.
 */
import { open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import { processAlive } from "../process/pid.js";
import { crashPoint } from "../util/crash-point.js";
import { readdirOrEmpty } from "../util/fs.js";
import { crypto } from "../util/builtins.js";

export interface WriteOptions {
  /** File mode of the new file (default 0o644; key material wants 0o600). */
  mode?: number;
}

/** Atomically replace `path` with `data`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: WriteOptions = {}): Promise<void> {
  const dir = dirname(path);
  // Same directory, so rename(2) is atomic (no cross-device copy).
  const temp = join(dir, `.${basename(path)}.tmp-${process.pid}-${crypto().randomBytes(4).toString("hex")}`);
  try {
    const file = await open(temp, "wx", opts.mode ?? 0o644);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    crashPoint(`write:${basename(path)}`);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

/** A temp file of writeFileAtomic, with the pid of its writer. */
const tempPattern = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;

/**
 * Remove the temp files in `dir` that a killed writeFileAtomic left: those
 * whose writer's pid runs no process. A pid taken again by another process
 * keeps its file (a few bytes) until that one ends too; a live writer's is
 * never touched. Returns the paths removed.
 */
export async function removeAbandonedTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdirOrEmpty(dir)) {
    const pid = tempPattern.exec(name)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(join(dir, name));
  }
  return removed;
}

export async function writeJsonAtomic(path: string, value: unknown, opts: WriteOptions = {}): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, opts);
}

/** Make a rename or create in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  await syncPath(dir);
}

/** Make a file's bytes durable, before it is renamed into place (a file a tool such as qemu-img wrote). */
export async function syncFile(path: string): Promise<void> {
  await syncPath(path);
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Parse a JSON state file. A missing file is ERR_SKIFF_FILE_NOT_FOUND, a
 * file that does not parse is ERR_SKIFF_STATE_CORRUPT naming the file, so
 * the user can look at it rather than meet a bare SyntaxError.
 */
export async function readJson<T>(path: string): Promise<T> {
  const value = await readJsonIfExists<T>(path);
  if (value === undefined) {
    throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `file not found: ${path}`, { details: { path } });
  }
  return value;
}

/** Like readJson, but undefined when the file does not exist. */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `state file is not valid JSON: ${path} (${(err as Error).message})`, {
      hint: `inspect or remove ${path}; if it belongs to a VM, \`skiff rm -f\` that VM`,
      cause: err,
      details: { path },
    });
  }
}

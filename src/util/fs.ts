/** Small filesystem helpers shared by the store, the image cache and the unpackers. */
import { lstatSync, type Stats } from "node:fs";
import { lstat, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoOf } from "../errors.js";

/** The names in `dir`, or none when it does not exist (yet). */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return [];
    throw err;
  }
}

/** Whether `path` exists; errors other than ENOENT (EACCES, EIO) are thrown, not taken for "no". */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return false;
    throw err;
  }
}

/** lstat, or undefined when nothing is at `path`. Synchronous: the unpackers look before each entry they write. */
export function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * The disk space `path` takes (allocated blocks), everything under it for a
 * directory; symlinks are not followed, and what vanishes meanwhile counts
 * nothing.
 */
export async function diskBytes(path: string): Promise<number> {
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return 0;
    throw err;
  }
  let bytes = st.blocks * 512;
  if (st.isDirectory()) for (const name of await readdirOrEmpty(path)) bytes += await diskBytes(join(path, name));
  return bytes;
}

/** Small filesystem helpers shared by the store and the image cache. */
import { readdir, stat } from "node:fs/promises";
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

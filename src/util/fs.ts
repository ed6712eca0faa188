/** Small filesystem helpers shared by the store and the image cache. */
import { readdir } from "node:fs/promises";
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

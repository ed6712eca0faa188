/**
 * Facts about host programs that change only when the programs do: QEMU's
 * version, the busybox behind the built-in image, the libraries ldd finds
 * for the guest's dropbear. Each was a process of 20-40 ms spawned for
 * every VM a command created (from Node, whose fork is not cheap). They are
 * kept in the cache directory under a key made of the programs' identities
 * (device, inode, size, mtime, ctime), so an upgraded or replaced program
 * is asked again; a file that cannot be read or does not pass `valid` is
 * asked again too. The cache directory is skiff's own (0700).
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readJsonIfExists, writeJsonAtomic } from "../store/atomic.js";

/** The identity of each file, or undefined when one is missing (nothing is cached then). */
function identities(files: readonly string[]): string | undefined {
  const parts: string[] = [];
  for (const file of files) {
    try {
      const st = statSync(file, { bigint: true });
      parts.push(`${file}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`);
    } catch {
      return undefined;
    }
  }
  return parts.join("\0\0");
}

/** `ask()`'s answer about `files`, from the cache while they are unchanged. */
export async function cachedProbe<T>(
  cacheDir: string,
  what: string,
  files: readonly string[],
  ask: () => Promise<T>,
  valid: (cached: unknown) => cached is T,
): Promise<T> {
  const id = identities(files);
  if (id === undefined) return ask();
  const path = join(cacheDir, "probes", `${what}-${createHash("sha256").update(id).digest("hex").slice(0, 24)}.json`);
  const cached = await readJsonIfExists<unknown>(path).catch(() => undefined);
  if (cached !== undefined && valid(cached)) return cached;
  const answer = await ask();
  // Best effort: a cache that cannot be written costs the next command the question, nothing more.
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    .then(() => writeJsonAtomic(path, answer, { mode: 0o600 }))
    .catch(() => undefined);
  return answer;
}

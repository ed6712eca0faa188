/**
 * The ref index: `<cache>/oci/refs.json`, which canonical reference
 * ("docker.io/library/alpine:3.20", "host/app@sha256:…") was last pulled as
 * which image manifest. Tags move in the registry; this says what they meant
 * here, so a VM can be made from a pulled image without the network. Written
 * whole (atomic) under a lock keyed by the cache, since homes can share one.
 */
import { join } from "node:path";
import { readJsonIfExists, writeJsonAtomic } from "../../store/atomic.js";
import { withLock } from "../../store/lock.js";
import { mkdir } from "node:fs/promises";
import { SkiffError } from "../../errors.js";

export type RefIndex = Record<string, string>;

export function refsPath(cacheDir: string): string {
  return join(cacheDir, "oci", "refs.json");
}

export async function readRefIndex(cacheDir: string): Promise<RefIndex> {
  const path = refsPath(cacheDir);
  const value = await readJsonIfExists<unknown>(path);
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `ref index is not a JSON object: ${path}`, {
      hint: `remove ${path}; pulled images stay in the cache and are recorded again on the next pull`,
      details: { path },
    });
  }
  const refs: RefIndex = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === "string") refs[k] = v;
  return refs;
}

/** The manifest digest `canonical` was last pulled as, if any. */
export async function lookupRef(cacheDir: string, canonical: string): Promise<string | undefined> {
  return (await readRefIndex(cacheDir))[canonical];
}

/** Record (or, with undefined, forget) references. */
export async function updateRefs(cacheDir: string, changes: Record<string, string | undefined>): Promise<void> {
  await mkdir(join(cacheDir, "oci"), { recursive: true, mode: 0o700 });
  await withLock(
    "oci-refs",
    async () => {
      const refs = await readRefIndex(cacheDir);
      for (const [ref, digest] of Object.entries(changes)) {
        if (digest === undefined) delete refs[ref];
        else refs[ref] = digest;
      }
      const sorted = Object.fromEntries(Object.entries(refs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await writeJsonAtomic(refsPath(cacheDir), sorted);
    },
    { home: cacheDir, purpose: "record pulled image references" },
  );
}

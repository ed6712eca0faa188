/**
 * skiff's small Node-API addons (flock.c, memfd.c: system calls Node has
 * no API for), built by scripts/postbuild.mjs into dist/. Each is loaded on
 * its first use, so importing a module that has one costs nothing, and an
 * unbuilt checkout fails with the fix rather than at import.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { packageRoot } from "./package-root.js";

const loaded = new Map<string, unknown>();

/** dist/`file` (e.g. "store/flock.node"), under the package root whether this runs from src (tests), dist or the bundled CLI. */
export function loadAddon<T>(file: string, what: string): T {
  const cached = loaded.get(file);
  if (cached !== undefined) return cached as T;
  const addonPath = join(packageRoot(), "dist", file);
  const hint = "run `./setup.sh` (or `npm run build`; it needs gcc and Node's headers)";
  if (!existsSync(addonPath)) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `skiff's ${what} addon is not built: ${addonPath} (ENOENT)`, { hint });
  }
  try {
    const addon = createRequire(import.meta.url)(addonPath) as T;
    loaded.set(file, addon);
    return addon;
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `cannot load skiff's ${what} addon ${addonPath}: ${(err as Error).message}`, { hint, cause: err });
  }
}

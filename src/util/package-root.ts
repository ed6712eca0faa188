/** Where skiff's package.json is: the root its built files (guest init, jailer, addon) are found from. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SkiffError } from "../errors.js";

/** The package root (where package.json is), from src/ (tests), dist/ or a bundle in dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new SkiffError("ERR_SKIFF_INTERNAL", "cannot find skiff's package root");
    dir = parent;
  }
  return dir;
}

/** skiff's version, from its package.json. */
export function skiffVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

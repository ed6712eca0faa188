/**
 * Where layers are found: the search paths given (a project passes
 * `<project>/layers`, then its extra paths), in order, then skiff's standard
 * library (the repository's top-level `layers/`, shipped with the package).
 * The first directory holding `<name>/layer.yml` wins, so a project's layer
 * shadows a standard one of the same name.
 */
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { SkiffError } from "../errors.js";
import { packageRoot } from "../util/package-root.js";
import { loadLayer, type LayerSpec } from "./schema.js";

/** skiff's own layers: `layers/` at the package root (from src/, dist/ and the bundled CLI alike). */
export const stdlibLayersDir = join(packageRoot(), "layers");

const layerName = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface FoundLayer {
  name: string;
  dir: string;
  /** The search path it was found in. */
  root: string;
  stdlib: boolean;
}

/** The search paths, then the standard library, each absolute and once. */
export function searchOrder(searchPaths: readonly string[], stdlib = stdlibLayersDir): string[] {
  return [...new Set([...searchPaths.map((p) => resolve(p)), stdlib])];
}

export async function findLayer(name: string, searchPaths: readonly string[], opts: { stdlib?: string; place?: string } = {}): Promise<FoundLayer> {
  if (!layerName.test(name)) {
    throw new SkiffError("ERR_SKIFF_CONFIG", `invalid layer name ${JSON.stringify(name)}`, {
      hint: "a layer name is a directory name: lowercase letters, digits, '.', '_' and '-'",
      ...(opts.place === undefined ? {} : { place: opts.place }),
    });
  }
  const stdlib = opts.stdlib ?? stdlibLayersDir;
  const order = searchOrder(searchPaths, stdlib);
  for (const root of order) {
    const dir = join(root, name);
    if (existsSync(join(dir, "layer.yml"))) return { name, dir, root, stdlib: root === stdlib };
  }
  throw new SkiffError("ERR_SKIFF_LAYER_NOT_FOUND", `layer not found: ${name} (looked in ${order.map((r) => join(r, name)).join(", ")})`, {
    hint: "list the layers with `skiff layer ls`; a layer is a directory holding layer.yml",
    details: { searched: order },
    ...(opts.place === undefined ? {} : { place: opts.place }),
  });
}

/** Find and load layers in order. */
export async function loadLayers(names: readonly string[], searchPaths: readonly string[], opts: { stdlib?: string } = {}): Promise<LayerSpec[]> {
  const specs: LayerSpec[] = [];
  for (const name of names) {
    const found = await findLayer(name, searchPaths, opts);
    specs.push(await loadLayer(name, found.dir));
  }
  return specs;
}

/** Every layer visible from the search paths, the first of each name (as findLayer would pick). */
export async function listLayers(searchPaths: readonly string[], opts: { stdlib?: string } = {}): Promise<(FoundLayer & { shadows: string[] })[]> {
  const stdlib = opts.stdlib ?? stdlibLayersDir;
  const byName = new Map<string, FoundLayer & { shadows: string[] }>();
  for (const root of searchOrder(searchPaths, stdlib)) {
    let entries: string[];
    try {
      entries = (await readdir(root)).sort();
    } catch {
      continue;
    }
    for (const name of entries) {
      const dir = join(root, name);
      if (!layerName.test(name) || !existsSync(join(dir, "layer.yml")) || !(await stat(dir)).isDirectory()) continue;
      const seen = byName.get(name);
      if (seen) seen.shadows.push(dir);
      else byName.set(name, { name, dir, root, stdlib: root === stdlib, shadows: [] });
    }
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

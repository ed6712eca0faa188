/**
 * `layer.yml`: what a layer installs into an image. One zod schema gives the
 * validation (unknown keys are errors, each problem at its file:line:column)
 * and the types; `loadLayer` reads a layer directory into a LayerSpec, with
 * every path it names checked against the directory.
 */
import { lstat, readFile } from "node:fs/promises";
import { isAbsolute, join, normalize } from "node:path";
import { z } from "zod/v4";
import { errnoOf, SkiffError } from "../errors.js";
import { configError, problemsError, type ConfigProblem } from "../config/zod-error.js";
import { parseYaml } from "../config/yaml-doc.js";

const str = z.string().min(1);

/** Debian, Alpine and Fedora package names (with an optional version or architecture suffix). */
const packageName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9+._:=~<>*-]*$/, "not a package name");

export const layerFileSchema = z.strictObject({
  description: str.optional().describe("one line shown by `skiff layer ls`"),
  packages: z.array(packageName).optional().describe("installed with the image's package manager (apt, apk or dnf)"),
  configs: z.array(str).optional().describe("paths relative to the layer directory, copied to the same path under /"),
  run: z.union([str, z.array(str)]).optional().describe("build-time shell commands, run as root in / after packages and configs"),
  start: str.optional().describe("a boot-time shell script body that keeps its daemon in the foreground"),
  binary: z.array(str).optional().describe('"host/path -> /dest": a file of the layer directory copied executable'),
});

export type LayerFile = z.infer<typeof layerFileSchema>;

export interface LayerBinary {
  /** Absolute host path inside the layer directory. */
  source: string;
  /** Absolute guest path; ending in "/" means "into this directory". */
  dest: string;
}

export interface LayerSpec {
  name: string;
  /** The layer directory (absolute). */
  dir: string;
  /** Its layer.yml (absolute). */
  file: string;
  description?: string;
  packages: string[];
  /** Relative to `dir`, normalised, no trailing slash ("etc/redis/redis.conf"). */
  configs: string[];
  run: string[];
  start?: string;
  binaries: LayerBinary[];
}

const layerHint = "see docs/layers.md for the keys of layer.yml";

/** Read and check `<dir>/layer.yml`; ERR_SKIFF_CONFIG with every problem's place. */
export async function loadLayer(name: string, dir: string): Promise<LayerSpec> {
  const file = join(dir, "layer.yml");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_LAYER_NOT_FOUND", `layer ${name}: cannot read ${file} (${errnoOf(err) ?? String(err)})`, { place: file, cause: err });
  }
  return parseLayer(name, dir, text, file);
}

/** The checks of loadLayer on text already read; `file` names it in places. */
export async function parseLayer(name: string, dir: string, text: string, file = join(dir, "layer.yml")): Promise<LayerSpec> {
  const doc = parseYaml(text, file);
  // An empty layer.yml is a layer that does nothing, not an error.
  const parsed = layerFileSchema.safeParse(doc.value ?? {});
  if (!parsed.success) throw configError(parsed.error, doc.placeOf, doc.keyPlaceOf, file, layerHint);
  const data = parsed.data;
  const problems: ConfigProblem[] = [];
  const inside = async (path: string, at: (string | number)[]): Promise<string | undefined> => {
    const rel = normalize(path).replace(/\/+$/, "");
    if (isAbsolute(path) || rel === "." || rel === ".." || rel.startsWith("../")) {
      problems.push({ place: doc.placeOf(at), message: `${JSON.stringify(path)} must be a path inside the layer directory` });
      return undefined;
    }
    try {
      await lstat(join(dir, rel));
    } catch {
      problems.push({ place: doc.placeOf(at), message: `${JSON.stringify(path)} does not exist in ${dir}` });
      return undefined;
    }
    return rel;
  };
  const configs: string[] = [];
  for (const [i, path] of (data.configs ?? []).entries()) {
    const rel = await inside(path, ["configs", i]);
    if (rel !== undefined) configs.push(rel);
  }
  const binaries: LayerBinary[] = [];
  for (const [i, line] of (data.binary ?? []).entries()) {
    const m = /^(.+?)\s*->\s*(\S.*)$/.exec(line.trim());
    if (m === null || !m[2]!.startsWith("/")) {
      problems.push({ place: doc.placeOf(["binary", i]), message: `expected "host/path -> /dest" with an absolute destination, got ${JSON.stringify(line)}` });
      continue;
    }
    const rel = await inside(m[1]!, ["binary", i]);
    if (rel !== undefined) binaries.push({ source: join(dir, rel), dest: m[2]! });
  }
  if (problems.length > 0) throw problemsError(problems, file, layerHint);
  return {
    name,
    dir,
    file,
    ...(data.description === undefined ? {} : { description: data.description }),
    packages: data.packages ?? [],
    configs,
    run: data.run === undefined ? [] : typeof data.run === "string" ? [data.run] : data.run,
    ...(data.start === undefined ? {} : { start: data.start }),
    binaries,
  };
}

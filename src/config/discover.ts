/**
 * Which project file `skiff up` means: the first directory from cwd upward
 * holding one of the known names (skiff's own first, then the formats skiff
 * reads from other tools), or the files given with `-f`.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { SkiffError } from "../errors.js";
import type { ProjectFormat } from "../project/types.js";

export interface ProjectFile {
  /** Absolute. */
  path: string;
  format: ProjectFormat;
}

/** In priority order: within one directory the first that exists wins. */
export const projectFileNames: ReadonlyArray<readonly [string, ProjectFormat]> = [
  ["skiff.yml", "skiff"],
  ["skiff.yaml", "skiff"],
  ["pontoon.yml", "pontoon"],
  ["pontoon.yaml", "pontoon"],
  ["VMFile.kdl", "vmfile"],
  ["compose.yaml", "compose"],
  ["compose.yml", "compose"],
  ["docker-compose.yaml", "compose"],
  ["docker-compose.yml", "compose"],
];

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The project file in `cwd` or the nearest directory above it. */
export async function discoverProjectFile(cwd: string): Promise<ProjectFile> {
  let dir = path.resolve(cwd);
  for (;;) {
    for (const [name, format] of projectFileNames) {
      const candidate = path.join(dir, name);
      if (await isFile(candidate)) return { path: candidate, format };
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new SkiffError("ERR_SKIFF_PROJECT_NOT_FOUND", `no project file in ${path.resolve(cwd)} or any directory above it`, {
    place: path.resolve(cwd),
    hint: `create skiff.yml (or have one of ${projectFileNames.slice(1).map(([n]) => n).join(", ")}), or name the project's files`,
  });
}

/** compose-go's DefaultOverrideFileNames: read after the compose file found, when no -f is given. */
export const composeOverrideNames = ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"];

/**
 * The project file found from `cwd` and, for a compose file, the first
 * override file next to it (as `docker compose` without -f reads both).
 */
export async function discoverProjectFiles(cwd: string): Promise<ProjectFile[]> {
  const main = await discoverProjectFile(cwd);
  if (main.format !== "compose") return [main];
  for (const name of composeOverrideNames) {
    const candidate = path.join(path.dirname(main.path), name);
    if (await isFile(candidate)) return [main, { path: candidate, format: "compose" }];
  }
  return [main];
}

/** A file named with `-f`: its format from its name (`*.kdl`, `*compose*`, `*pontoon*`, else skiff.yml). */
export function formatOfFile(file: string): ProjectFormat {
  const base = path.basename(file).toLowerCase();
  if (base.endsWith(".kdl")) return "vmfile";
  if (base.includes("compose")) return "compose";
  if (base.includes("pontoon")) return "pontoon";
  return "skiff";
}

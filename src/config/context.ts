/**
 * What every project-file loader (skiff.yml, pontoon.yml, compose, VMFile.kdl)
 * is handed besides the file itself, and the project-name rule they share.
 */
import path from "node:path";

export interface LoaderContext {
  /** Directory of the first file: relative paths in every file resolve against it (as compose does). */
  dir: string;
  /** The project name already decided (`-p`, else the file's `name`, else the directory). */
  projectName: string;
  /** The files read, absolute, in override order. */
  files: string[];
  /** The host environment (`environment: [KEY]` takes its value from here); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/**
 * A project name from free text (a directory name, a `name:` key), as
 * compose does: lowercased, anything outside [a-z0-9_-] dropped, and no
 * leading '-' or '_' (the name starts VM and network names). May return "".
 */
export function normalizeProjectName(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "")
    .replace(/^[-_]+/, "");
}

/** `~/x` → the home directory; then relative to the project file's directory. */
export function hostPath(dir: string, p: string, env: NodeJS.ProcessEnv): string {
  const home = env["HOME"] ?? "/";
  const expanded = p === "~" ? home : p.startsWith("~/") ? path.join(home, p.slice(2)) : p;
  return path.resolve(dir, expanded);
}

/**
 * What every project-file loader (skiff.yml, pontoon.yml, compose, VMFile.kdl)
 * is handed besides the file itself, and the project-name rule they share.
 */

export interface LoaderContext {
  /** Directory of the first file: relative paths in every file resolve against it (as compose does). */
  dir: string;
  /** The project name already decided (`-p`, else the file's `name`, else the directory). */
  projectName: string;
  /** The files read, absolute, in override order. */
  files: string[];
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

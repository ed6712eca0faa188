/**
 * Which project a /projects request means, and that project opened. A
 * request names it one way: its files on the server, its file's text with
 * the server directory the text belongs to, the directory alone (the file
 * found there as `skiff up` finds it), or only its name. A name is enough
 * for the verbs that work from the VMs' labels (ps, down, stop, start…); it
 * then has the services its VMs carry and no healthchecks, so ps shows no
 * health for it.
 */
import path from "node:path";
import { loadProject, SkiffError, type LoadProjectOptions, type Skiff } from "../index.js";
import { serviceBlanks } from "../pure.js";
import type { ProjectSource } from "../api/project-schemas.js";
import { Project } from "../project/project.js";
import type { ConfigWarning, ProjectSpec, ServiceSpec } from "../project/types.js";
import { projectVms, serviceOf } from "../project/vms.js";

export type SourceKind = { kind: "file"; options: LoadProjectOptions } | { kind: "name"; name: string };

const ways = "name, files, content (with directory) or directory";

/** What `source` asks for, checked; pure. */
export function sourceKind(source: ProjectSource): SourceKind {
  const { name, files, content, filename, directory, projectName } = source;
  if (name !== undefined) {
    const extra = (["files", "content", "filename", "directory", "projectName"] as const).find((k) => source[k] !== undefined);
    if (extra !== undefined) throw new SkiffError("ERR_SKIFF_USAGE", `name and ${extra} name the project twice`, { place: extra, hint: `give one of ${ways}` });
    return { kind: "name", name };
  }
  const named = projectName === undefined ? {} : { projectName };
  if (content !== undefined) {
    if (files !== undefined) throw new SkiffError("ERR_SKIFF_USAGE", "content and files name the project twice", { place: "files", hint: "post the text, or name files on the server, not both" });
    if (directory === undefined) {
      throw new SkiffError("ERR_SKIFF_USAGE", "content needs a directory", { place: "directory", hint: "the server directory where the file's relative paths resolve (and whose name is the project's by default)" });
    }
    return { kind: "file", options: { cwd: directory, files: [filename ?? "skiff.yml"], text: content, ...named } };
  }
  if (filename !== undefined) throw new SkiffError("ERR_SKIFF_USAGE", "filename names posted content, and there is none", { place: "filename", hint: "send content, or name the file with files" });
  if (files !== undefined) {
    const relative = files.find((f) => !path.isAbsolute(f));
    if (relative !== undefined && directory === undefined) {
      throw new SkiffError("ERR_SKIFF_USAGE", `${relative} is relative and there is no directory`, { place: "files", hint: "give absolute paths on the server, or a directory they are relative to" });
    }
    // Errors place a file relative to cwd: "skiff.yml:3:5" when cwd is its directory.
    return { kind: "file", options: { cwd: directory ?? path.dirname(files[0]!), files, ...named } };
  }
  if (directory !== undefined) return { kind: "file", options: { cwd: directory, ...named } };
  throw new SkiffError("ERR_SKIFF_USAGE", "which project?", { hint: `give one of ${ways}` });
}

export interface OpenedProject {
  project: Project;
  warnings: ConfigWarning[];
}

/** The project `source` means; `needsFile` (up) refuses a bare name. */
export async function openProject(skiff: Skiff, source: ProjectSource, needsFile = false): Promise<OpenedProject> {
  const kind = sourceKind(source);
  if (kind.kind === "name") {
    if (needsFile) throw new SkiffError("ERR_SKIFF_USAGE", "up needs the project's file", { place: "name", hint: "give files, content (with directory) or directory" });
    return { project: new Project(skiff, await labelledSpec(skiff, kind.name)), warnings: [] };
  }
  const spec = await loadProject(kind.options);
  return { project: new Project(skiff, spec), warnings: spec.warnings };
}

/** A project known only by its VMs' labels: its services are those they name, with nothing else known of them. */
export async function labelledSpec(skiff: Skiff, name: string): Promise<ProjectSpec> {
  const counts = new Map<string, number>();
  for (const vm of await projectVms(skiff, name)) counts.set(serviceOf(vm), (counts.get(serviceOf(vm)) ?? 0) + 1);
  return {
    name,
    dir: "",
    format: "skiff",
    files: [],
    services: [...counts].map(([service, replicas]) => labelledService(service, replicas)),
    networks: [],
    volumes: [],
    layerPaths: [],
    warnings: [],
  };
}

function labelledService(name: string, replicas: number): ServiceSpec {
  return { name, ...serviceBlanks(), userNetwork: true, networks: [], replicas, place: name };
}

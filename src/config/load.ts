/**
 * The one entry point from a directory (or `-f` files) to a ProjectSpec:
 * find the file, read it, decide the project name, hand it to the loader of
 * its format. Every loader gets the same LoaderContext.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { errnoOf, SkiffError } from "../errors.js";
import type { ProjectFormat, ProjectSpec } from "../project/types.js";
import { composeToProject } from "./compose.js";
import { normalizeProjectName, type LoaderContext } from "./context.js";
import { discoverProjectFiles, formatOfFile, type ProjectFile } from "./discover.js";
import { isMapping, mergeDocs } from "./merge.js";
import { pontoonToProject } from "./pontoon.js";
import { skiffToProject } from "./skiff-file.js";
import { validateProject } from "./validate.js";
import { vmfileToProject } from "./vmfile.js";
import { parseYaml, type YamlDoc } from "./yaml-doc.js";

export interface LoadProjectOptions {
  /** Where discovery starts, and what places in errors are relative to. */
  cwd: string;
  /** `-f`, repeatable: later files override earlier ones. */
  files?: string[];
  /** `-p/--project-name`. */
  projectName?: string;
  /** The host environment for `environment: [KEY]` and compose's `${VAR}` (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The text of the one file in `files`, given instead of read from disk (a file posted to `skiff serve`); its path still places errors and resolves relative paths. */
  text?: string;
}

/** What compose accepts as a project name; a name given (not derived) must already be one. */
const projectNamePattern = /^[a-z0-9][a-z0-9_-]*$/;
const nameHint = "a project name is lowercase letters, digits, '-' and '_', starting with a letter or digit";

export async function loadProject(opts: LoadProjectOptions): Promise<ProjectSpec> {
  const files: ProjectFile[] =
    opts.files !== undefined && opts.files.length > 0
      ? opts.files.map((f) => ({ path: path.resolve(opts.cwd, f), format: formatOfFile(f) }))
      : await discoverProjectFiles(opts.cwd);
  const format = files[0]!.format;
  const other = files.find((f) => f.format !== format);
  if (other !== undefined) {
    throw new SkiffError("ERR_SKIFF_USAGE", `cannot merge ${other.path} (${other.format}) into a ${format} project`, { place: "files", hint: "every file of one project must be of one format" });
  }
  if (format === "vmfile" && files.length > 1) {
    throw new SkiffError("ERR_SKIFF_USAGE", "VMFile.kdl projects take one file", { place: "files", hint: "name a single VMFile.kdl" });
  }
  if (opts.text !== undefined && files.length !== 1) {
    throw new SkiffError("ERR_SKIFF_USAGE", "a project given as text is one file", { place: "-f", hint: "name exactly one file for the text" });
  }
  const texts = opts.text !== undefined ? [opts.text] : await Promise.all(files.map((f) => readProjectFile(f.path)));
  const shown = files.map((f) => shownPath(opts.cwd, f.path));
  const ctxFor = (docs: YamlDoc[] | undefined): LoaderContext => ({
    dir: path.dirname(files[0]!.path),
    projectName: projectName(opts, files[0]!.path, docs === undefined ? undefined : mergeDocs(docs)),
    files: files.map((f) => f.path),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  });
  const docs = format === "vmfile" ? undefined : texts.map((text, i) => parseYaml(text, shown[i]!));
  const spec = docs === undefined ? vmfileToProject(texts[0]!, shown[0]!, ctxFor(undefined)) : yamlLoaders[format as Exclude<ProjectFormat, "vmfile">](docs, ctxFor(docs));
  validateProject(spec);
  return spec;
}

const yamlLoaders: Record<Exclude<ProjectFormat, "vmfile">, (docs: YamlDoc[], ctx: LoaderContext) => ProjectSpec> = {
  skiff: skiffToProject,
  pontoon: pontoonToProject,
  compose: composeToProject,
};

/** Places read "skiff.yml:3:5" when the file is in cwd, a path relative to cwd when near, else absolute. */
function shownPath(cwd: string, file: string): string {
  const rel = path.relative(path.resolve(cwd), file);
  return rel.startsWith("../../") || path.isAbsolute(rel) ? file : rel;
}

async function readProjectFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const code = errnoOf(err);
    if (code === "ENOENT") throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `project file not found: ${file}`, { place: "files", hint: "check the file's path" });
    throw new SkiffError("ERR_SKIFF_CONFIG", `cannot read ${file} (${code ?? String(err)})`, { place: file, cause: err });
  }
}

/** `-p`, else the file's top-level `name:`, else the first file's directory name (lowercased to [a-z0-9_-]). */
function projectName(opts: LoadProjectOptions, firstFile: string, doc: YamlDoc | undefined): string {
  if (opts.projectName !== undefined) {
    if (!projectNamePattern.test(opts.projectName)) throw new SkiffError("ERR_SKIFF_USAGE", `invalid project name ${JSON.stringify(opts.projectName)}`, { place: "projectName", hint: nameHint });
    return opts.projectName;
  }
  const given = doc !== undefined && isMapping(doc.value) ? doc.value["name"] : undefined;
  if (typeof given === "string") {
    if (!projectNamePattern.test(given)) throw new SkiffError("ERR_SKIFF_CONFIG", `invalid project name ${JSON.stringify(given)}`, { place: doc!.placeOf(["name"]), hint: nameHint });
    return given;
  }
  const dir = path.basename(path.dirname(firstFile));
  const derived = normalizeProjectName(dir);
  if (derived === "") throw new SkiffError("ERR_SKIFF_USAGE", `no project name can be made from the directory name ${JSON.stringify(dir)}`, { place: path.dirname(firstFile), hint: `give a project name, or a top-level name: key; ${nameHint}` });
  return derived;
}

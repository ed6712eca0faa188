/**
 * Top-level `include:` (Compose Specification): other compose files whose
 * services, networks and volumes join the project. Each is read as its own
 * project — relative paths from its project_directory (default: its own
 * directory), variables from its env_file (default: that directory's .env)
 * under the shell's — and a resource it defines may not be defined again,
 * differently, by the file that includes it. Include cycles are an error.
 */
import path from "node:path";
import { mergeComposeDocs } from "./compose-merge.js";
import { projectEnv, readComposeDoc, type ComposeReader } from "./compose-docs.js";
import { resolveExtends } from "./compose-extends.js";
import { configFail } from "./foreign.js";
import { isMapping } from "./merge.js";
import type { YamlDoc } from "./yaml-doc.js";

const hint = "write include: [path.yml] or include: [{ path: path.yml, project_directory: dir, env_file: .env }]";
const sections = ["services", "networks", "volumes"] as const;

/** `doc` (from `file`, absolute) preceded by the files it includes (recursively), `include` removed; `stack` is the files including it. */
export function expandIncludes(doc: YamlDoc, file: string, r: ComposeReader, stack: readonly string[] = []): YamlDoc[] {
  const value = doc.value;
  if (!isMapping(value) || value["include"] === undefined || value["include"] === null) return [doc];
  const list = typeof value["include"] === "string" ? [value["include"]] : value["include"];
  if (!Array.isArray(list)) return configFail("include: expected a path or a list", doc.placeOf(["include"]), hint);
  const dir = path.dirname(file);
  const included = list.map((entry, i) => {
    const place = doc.placeOf(typeof value["include"] === "string" ? ["include"] : ["include", i]);
    const e = typeof entry === "string" ? { path: entry } : isMapping(entry) ? entry : configFail("include: expected a path or { path, project_directory, env_file }", place, hint);
    const paths = strings(e["path"], place).map((p) => path.resolve(dir, p));
    if (paths.length === 0) configFail("include: no path", place, hint);
    for (const p of paths) {
      if (p === file || stack.includes(p)) configFail(`include cycle: ${[...stack, file, p].map((f) => path.basename(f)).join(" -> ")}`, place, "a file cannot include itself, directly or through others");
    }
    const projectDir = typeof e["project_directory"] === "string" ? path.resolve(dir, e["project_directory"]) : path.dirname(paths[0]!);
    const envFiles = e["env_file"] === undefined ? undefined : strings(e["env_file"], place).map((f) => path.resolve(dir, f));
    const env = projectEnv(projectDir, r.shell, envFiles, place);
    const docs = paths.flatMap((p) => {
      const sub = resolveExtends(readComposeDoc(p, env, r, place, projectDir), p, env, r);
      return expandIncludes(sub, p, r, [...stack, file]);
    });
    return mergeComposeDocs(docs);
  });
  const { include: _ignored, ...own } = value;
  checkConflicts([...included, { ...doc, value: own }]);
  return [...included, { ...doc, value: own }];
}

function strings(v: unknown, place: string): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v;
  return configFail("include: expected a path or a list of paths", place, hint);
}

/** A service, network or volume defined by two of `docs`, differently, is an error at the later definition. */
function checkConflicts(docs: readonly YamlDoc[]): void {
  for (const section of sections) {
    const seen = new Map<string, YamlDoc>();
    for (const doc of docs) {
      const map = isMapping(doc.value) ? doc.value[section] : undefined;
      if (!isMapping(map)) continue;
      for (const [name, def] of Object.entries(map)) {
        const first = seen.get(name);
        if (first !== undefined && JSON.stringify((first.value as Record<string, Record<string, unknown>>)[section]![name]) !== JSON.stringify(def)) {
          configFail(`${section}.${name} is defined both in ${first.file} (included) and in ${doc.file}`, doc.keyPlaceOf([section, name]), "rename one: a resource of an included file may not be redefined (Compose Specification, include)");
        }
        seen.set(name, doc);
      }
    }
  }
}

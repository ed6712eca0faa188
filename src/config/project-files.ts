/**
 * Project files as the public API offers them (src/index.ts): reading one
 * (any of the four formats) into a ProjectSpec, writing it back as
 * skiff.yml, skiff.yml's JSON Schema, YAML text. Each loads its parsers
 * (yaml, the schemas) when first called, so that importing the library
 * costs none of them (`skiff ps` must not, docs/benchmarks.md).
 */
import type { ProjectSpec } from "../project/types.js";
import type { LoadProjectOptions } from "./load.js";

/** The project found from `cwd` (or the files given), validated, as one ProjectSpec. */
export async function loadProject(opts: LoadProjectOptions): Promise<ProjectSpec> {
  return (await import("./load.js")).loadProject(opts);
}

/** A ProjectSpec as skiff.yml's structure (`skiff config`). */
export async function renderProject(spec: ProjectSpec): Promise<Record<string, unknown>> {
  return (await import("./render.js")).renderProject(spec);
}

/** skiff.yml's JSON Schema, for editors (`skiff config schema`). */
export async function skiffJsonSchema(): Promise<Record<string, unknown>> {
  return (await import("./json-schema.js")).skiffJsonSchema();
}

/** `value` as YAML text. */
export async function toYaml(value: unknown): Promise<string> {
  return (await import("./yaml-doc.js")).toYaml(value);
}

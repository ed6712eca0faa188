/**
 * Which services `up` starts, pure: the ones asked for and everything they
 * depend on, in an order where every dependency comes first.
 */
import { SkiffError } from "../pure.js";
import type { ProjectSpec, ServiceSpec } from "./types.js";

/** The services named (all when none are) plus their dependencies, dependencies first. */
export function servicesToStart(project: ProjectSpec, names: readonly string[] = []): ServiceSpec[] {
  const byName = new Map(project.services.map((s) => [s.name, s]));
  for (const n of names) serviceNamed(project, n);
  const wanted = names.length === 0 ? project.services.map((s) => s.name) : [...names];
  const out: ServiceSpec[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, path: string[]): void => {
    const s = byName.get(name);
    if (s === undefined) {
      throw new SkiffError("ERR_SKIFF_CONFIG", `${path.at(-1) ?? "a service"} depends on ${name}, which is not a service`, {
        hint: "fix depends_on",
      });
    }
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") {
      throw new SkiffError("ERR_SKIFF_CONFIG", `services depend on each other in a cycle: ${[...path, name].join(" -> ")}`, {
        place: s.place,
        hint: "remove one of the depends_on entries of the cycle",
      });
    }
    state.set(name, "visiting");
    for (const d of s.dependsOn) visit(d.service, [...path, name]);
    state.set(name, "done");
    out.push(s);
  };
  for (const name of wanted) visit(name, []);
  return out;
}

/** The service called `name`, or a clear error listing the ones there are. */
export function serviceNamed(project: ProjectSpec, name: string): ServiceSpec {
  const s = project.services.find((x) => x.name === name);
  if (s === undefined) {
    throw new SkiffError("ERR_SKIFF_USAGE", `no service ${name} in project ${project.name}`, {
      place: "SERVICE",
      hint: `services: ${project.services.map((x) => x.name).join(", ") || "none"}`,
    });
  }
  return s;
}

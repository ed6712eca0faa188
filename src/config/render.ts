/**
 * `skiff config`: the project as skiff understood it, after defaults, -f
 * merging and translation from whatever format it was written in. Plain
 * JSON-able data; the `place` of each item is left out (it is for errors, and
 * would make the output differ by file layout alone). Only skiff's own
 * `place` fields go: maps the user filled (environment, labels, mcp) are
 * shown as written, a variable called `place` included.
 */
import type { ProjectSpec } from "../project/types.js";
import { objectOf } from "../util/user-keys.js";

/** Keys whose values are the user's data, copied as they are. */
const userData = new Set(["environment", "labels", "mcp"]);

export function renderProject(spec: ProjectSpec): Record<string, unknown> {
  return withoutPlaces(spec) as Record<string, unknown>;
}

function withoutPlaces(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutPlaces);
  if (typeof value !== "object" || value === null) return value;
  return objectOf(
    Object.entries(value)
      .filter(([k, v]) => k !== "place" && v !== undefined)
      .map(([k, v]) => [k, userData.has(k) ? v : withoutPlaces(v)] as const),
  );
}

/**
 * `skiff config`: the project as skiff understood it, after defaults, -f
 * merging and translation from whatever format it was written in. Plain
 * JSON-able data; the `place` of each item is left out (it is for errors, and
 * would make the output differ by file layout alone).
 */
import type { ProjectSpec } from "../project/types.js";

export function renderProject(spec: ProjectSpec): Record<string, unknown> {
  return withoutPlaces(spec) as Record<string, unknown>;
}

function withoutPlaces(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutPlaces);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k, v]) => k !== "place" && v !== undefined)
      .map(([k, v]) => [k, withoutPlaces(v)]),
  );
}

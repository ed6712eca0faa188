/**
 * Where a list item of a ProjectSpec (a mount, a depends_on entry) was
 * written, kept beside the spec rather than in it: the spec is what `skiff
 * config` prints and what `up` hashes, and neither should change when a file
 * is only re-indented. Checks that run on the finished spec (validate.ts)
 * look places up here; an item no loader noted falls back to its service's.
 */
import type { Place } from "../project/types.js";

const places = new WeakMap<object, Place>();

/** `item`, noted as written at `place`. */
export function placed<T extends object>(item: T, place: Place): T {
  places.set(item, place);
  return item;
}

export function itemPlace(item: object, fallback: Place): Place {
  return places.get(item) ?? fallback;
}

/**
 * KDL documents with places. vmctl reads VMFile.kdl with the Rust `kdl`
 * crate 6, which takes KDL v2 and falls back to v1; @bgotink/kdl does the
 * same here. (Its own parseCompat drops locations on the v1 path, so the two
 * parsers are tried in turn.) Every node and entry keeps its line:column.
 */
import { getLocation, parse, type Document, type Entry, type Node } from "@bgotink/kdl";
import { parse as parseV1 } from "@bgotink/kdl/v1-compat";
import { SkiffError } from "../errors.js";

export type { Document, Entry, Node } from "@bgotink/kdl";

interface KdlErrorLike {
  message: string;
  start?: { line: number; column: number; offset: number };
  errors?: KdlErrorLike[];
}

/** Parse `text` (from `file`): KDL v2, else v1; a syntax error is ERR_SKIFF_CONFIG at its line:column. */
export function parseKdl(text: string, file: string): Document {
  let v2Error: unknown;
  try {
    return parse(text, { storeLocations: true });
  } catch (err) {
    v2Error = err;
  }
  try {
    return parseV1(text, { storeLocations: true });
  } catch (v1Error) {
    // The version whose parser got further is the one the file is written in.
    const found = [...details(v2Error), ...details(v1Error)].sort((a, b) => (b.start?.offset ?? -1) - (a.start?.offset ?? -1))[0];
    const message = (found?.message ?? String(v2Error)).replace(/ at \d+:\d+$/, "");
    throw new SkiffError("ERR_SKIFF_CONFIG", `${file} is not valid KDL: ${message}`, {
      place: found?.start === undefined ? file : `${file}:${found.start.line}:${found.start.column}`,
      hint: "check the quoting and braces at that place (https://kdl.dev)",
    });
  }
}

function details(err: unknown): KdlErrorLike[] {
  if (typeof err !== "object" || err === null || !("message" in err)) return [];
  const e = err as KdlErrorLike;
  return e.errors !== undefined && e.errors.length > 0 ? e.errors.flatMap(details) : [e];
}

/** "file:line:col" of a node or entry. */
export function kdlPlace(file: string, element: Node | Entry): string {
  const start = getLocation(element)?.start;
  return start === undefined ? file : `${file}:${start.line}:${start.column}`;
}

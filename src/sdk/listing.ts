/**
 * files.list: a shell script that prints one NUL-terminated record per
 * directory entry ("f\t123\tname"), and the parser that reads it back as
 * hostile data. NUL is the one byte a name cannot hold, so no name can
 * forge a record; a name that could still do harm where a caller shows or
 * joins it (control characters, a slash, invalid UTF-8) is left out and
 * counted instead, and records past `maxEntries` are dropped.
 */
import { posix } from "node:path";
import { entryNameProblem } from "./guest-text.js";

export interface EntryInfo {
  name: string;
  /** E2B knows file and dir; skiff also says symlink (not followed) and other (devices, fifos, sockets). */
  type: "file" | "dir" | "symlink" | "other";
  path: string;
  /** Bytes, for regular files. */
  size?: number;
}

export interface Listing {
  entries: EntryInfo[];
  /** Records left out: unsafe names, malformed records, those past maxEntries. */
  skipped: number;
}

export const defaultMaxEntries = 100_000;

/** `$1` a directory; exit `missing` when it is not there, `notDir` when it is not a directory. Sizes cost a stat per regular file. */
export function listScript(missing: number, notDir: number): string {
  return [
    `[ -e "$1" ] || exit ${missing}; [ -d "$1" ] || exit ${notDir}; cd -- "$1" || exit 1`,
    `for f in * .[!.]* ..?*; do`,
    `  [ -e "$f" ] || [ -L "$f" ] || continue; s=`,
    `  if [ -L "$f" ]; then t=symlink; elif [ -d "$f" ]; then t=dir; elif [ -f "$f" ]; then t=file; s=$(stat -c %s -- "$f" 2>/dev/null); else t=other; fi`,
    `  printf '%s\\t%s\\t%s\\0' "$t" "$s" "$f"`,
    `done`,
  ].join("\n");
}

const types = new Set<EntryInfo["type"]>(["file", "dir", "symlink", "other"]);
const decoder = new TextDecoder("utf-8");

export function parseListing(out: Uint8Array, dir: string, maxEntries = defaultMaxEntries): Listing {
  const entries: EntryInfo[] = [];
  let skipped = 0;
  let start = 0;
  const text = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  while (start < text.length) {
    let end = text.indexOf(0, start);
    // An unterminated last record is what a cut-off stream leaves: dropped.
    if (end === -1) end = text.length;
    const record = decoder.decode(text.subarray(start, end));
    const complete = end < text.length;
    start = end + 1;
    const entry = complete ? parseRecord(record, dir) : undefined;
    if (entry === undefined || entries.length >= maxEntries) skipped++;
    else entries.push(entry);
  }
  return { entries, skipped };
}

function parseRecord(record: string, dir: string): EntryInfo | undefined {
  const first = record.indexOf("\t");
  const second = first === -1 ? -1 : record.indexOf("\t", first + 1);
  if (second === -1) return undefined;
  const type = record.slice(0, first) as EntryInfo["type"];
  const sizeText = record.slice(first + 1, second);
  const name = record.slice(second + 1);
  if (!types.has(type) || !/^\d{0,19}$/.test(sizeText) || entryNameProblem(name) !== undefined) return undefined;
  const entry: EntryInfo = { name, type, path: posix.join(dir, name) };
  if (sizeText !== "" && type === "file") entry.size = Number(sizeText);
  return entry;
}

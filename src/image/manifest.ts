/**
 * What goes into a root filesystem, as data. An image's digest is the hash
 * of its manifest, not of the ext4 bytes: mke2fs output depends on the host
 * (readdir order, e2fsprogs version), while the manifest says exactly what
 * the guest will see, so equal manifests name the same base everywhere.
 */
import { createHash } from "node:crypto";
import { SkiffError } from "../errors.js";

/** Where a file's bytes come from when the root is staged. */
export type FileSource = { hostPath: string } | { text: string };

interface Owned {
  /** Absolute guest path, no trailing slash ("/bin/sh"). */
  path: string;
  uid: number;
  gid: number;
}

export type ManifestEntry =
  | (Owned & { type: "dir"; mode: number })
  | (Owned & { type: "file"; mode: number; sha256: string; source: FileSource })
  | (Owned & { type: "symlink"; target: string });

export interface FsParams {
  type: "ext4";
  label: string;
  /** Size of the filesystem, which is the disk size the guest sees. */
  sizeBytes: number;
}

export interface ImageManifest {
  /** What kind of recipe made it ("skiff-base"); part of the digest. */
  kind: string;
  /** Bumped when the recipe or the ext4 builder changes, so old bases are not reused. */
  layoutVersion: number;
  fs: FsParams;
  entries: ManifestEntry[];
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A text file entry; its hash is computed here so the manifest stays honest. */
export function textFile(path: string, text: string, opts: { mode?: number; uid?: number; gid?: number } = {}): ManifestEntry {
  return {
    type: "file",
    path,
    mode: opts.mode ?? 0o644,
    uid: opts.uid ?? 0,
    gid: opts.gid ?? 0,
    sha256: sha256Hex(text),
    source: { text },
  };
}

/** Byte-wise order, not locale order: the digest must not depend on ICU. */
function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

const pathPattern = /^(\/[^/\0\n"\\]+)+$/;

/**
 * Entries sorted, with every problem found at once: bad or duplicate paths,
 * entries whose parent directory is missing or is not a directory.
 */
export function normalizeManifest(manifest: ImageManifest): ImageManifest {
  const entries = [...manifest.entries].sort(byPath);
  const problems: string[] = [];
  const types = new Map<string, ManifestEntry["type"]>();
  for (const entry of entries) {
    // Quotes and backslashes would need escaping in debugfs scripts; no image we make needs them.
    if (!pathPattern.test(entry.path)) problems.push(`bad path ${JSON.stringify(entry.path)}`);
    else if (types.has(entry.path)) problems.push(`duplicate path ${entry.path}`);
    types.set(entry.path, entry.type);
  }
  for (const entry of entries) {
    if (!pathPattern.test(entry.path)) continue;
    const parent = entry.path.slice(0, entry.path.lastIndexOf("/"));
    if (parent !== "" && types.get(parent) !== "dir") problems.push(`${entry.path}: parent ${parent} is not a directory entry`);
  }
  if (problems.length > 0) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `invalid image manifest (${manifest.kind}): ${problems.join("; ")}`, {
      details: { problems },
    });
  }
  return { ...manifest, entries };
}

/** The canonical form that is hashed: sources are left out, their hashes stay. */
export function canonicalManifest(manifest: ImageManifest): string {
  const { kind, layoutVersion, fs } = manifest;
  const entries = normalizeManifest(manifest).entries.map((e) => {
    const owner = { path: e.path, uid: e.uid, gid: e.gid };
    switch (e.type) {
      case "dir":
        return { type: e.type, ...owner, mode: e.mode };
      case "file":
        return { type: e.type, ...owner, mode: e.mode, sha256: e.sha256 };
      case "symlink":
        return { type: e.type, ...owner, target: e.target };
    }
  });
  return JSON.stringify({ kind, layoutVersion, fs: { type: fs.type, label: fs.label, sizeBytes: fs.sizeBytes }, entries });
}

/** The image's content address, "sha256:<64 hex>". */
export function manifestDigest(manifest: ImageManifest): string {
  return `sha256:${sha256Hex(canonicalManifest(manifest))}`;
}

/** "sha256:<hex>" → "<hex>", rejecting anything else. */
export function digestHex(digest: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!match?.[1]) throw new SkiffError("ERR_SKIFF_INTERNAL", `not a sha256 digest: ${JSON.stringify(digest)}`);
  return match[1];
}

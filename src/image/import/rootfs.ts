/**
 * Plain root filesystems: a tarball (one layer, any compression) or a
 * directory. They carry no config, so they run a shell (choose.ts), and no
 * manifest, so their base is named by a digest of their content.
 */
import { createHash } from "node:crypto";
import type { BaseSource } from "../unpack/build.js";
import type { ArchiveScan } from "./archive.js";
import { importDigest, importedRuntimeConfig } from "./choose.js";
import { packDirectory } from "./pack-dir.js";

export interface RootfsImportOptions {
  name: string;
  source: string;
}

export function rootfsArchiveSource(scan: ArchiveScan, opts: RootfsImportOptions): BaseSource {
  const config = importedRuntimeConfig;
  return {
    digest: importDigest("rootfs-archive", scan.digest, config),
    name: opts.name,
    // The file's digest is checked again as it is unpacked: a file changed since the scan fails the build.
    layers: [{ path: scan.path, mediaType: "", digest: scan.digest }],
    config,
    source: opts.source,
  };
}

/** Reads the whole directory once to name it; the build reads it again and checks it got the same. */
export async function rootfsDirectorySource(dir: string, opts: RootfsImportOptions): Promise<BaseSource> {
  const hash = createHash("sha256");
  for await (const chunk of packDirectory(dir)) hash.update(chunk);
  const tarDigest = `sha256:${hash.digest("hex")}`;
  const config = importedRuntimeConfig;
  return {
    digest: importDigest("rootfs-directory", tarDigest, config),
    name: opts.name,
    layers: [{ label: dir, open: () => packDirectory(dir), diffId: tarDigest }],
    config,
    source: opts.source,
  };
}

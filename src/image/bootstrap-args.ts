/**
 * What `skiff image bootstrap` asks mmdebstrap for (bootstrap.ts runs it):
 * apart from the run, so the CLI can name the default suite in --help
 * without loading the image importer.
 */
export const defaultSuite = "bookworm";

/** mmdebstrap's arguments for a minbase tarball at `target`; the mirror argument already decided. */
export function mmdebstrapArgs(opts: { suite: string; target: string; mirror?: string; include?: readonly string[] }): string[] {
  // apt is what layers install with; named, since a repository whose index lacks the archive's priorities would leave it out.
  const include = [...new Set(["apt", ...(opts.include ?? [])])];
  return [
    "--quiet",
    "--variant=minbase",
    `--include=${include.join(",")}`,
    // No man pages and translations: a VM image, not a workstation.
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    // No fsync per unpacked file: a bootstrap cut off is thrown away (only the image imported from its
    // tarball is kept). Beside another writer on the host (a compile) the bootstrap took 109 s against
    // 53 s quiet; without these syncs 98 s (dpkg's database syncs remain).
    "--dpkgopt=force-unsafe-io",
    opts.suite,
    opts.target,
    ...(opts.mirror === undefined ? [] : [opts.mirror]),
  ];
}

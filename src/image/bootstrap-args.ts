/**
 * What `skiff image bootstrap` asks mmdebstrap for (bootstrap.ts runs it):
 * apart from the run, so the CLI can name the default suite in --help
 * without loading the image importer.
 */
import { shq } from "../layer/package-manager.js";
export const defaultSuite = "bookworm";

/**
 * mmdebstrap's arguments for a minbase tarball at `target`; the mirror argument already decided.
 * `sourcesList`: the image's /etc/apt/sources.list instead of the mirror it was made from.
 */
export function mmdebstrapArgs(opts: { suite: string; target: string; mirror?: string; include?: readonly string[]; sourcesList?: string }): string[] {
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
    ...(opts.sourcesList === undefined ? [] : [`--customize-hook=printf '%s\\n' ${shq(opts.sourcesList)} > "$1/etc/apt/sources.list"`]),
    opts.suite,
    opts.target,
    ...(opts.mirror === undefined ? [] : [opts.mirror]),
  ];
}

/** mmdebstrap's own mirror when none is given: where the release date is read (bootstrap.ts). */
export const defaultDebianMirror = "http://deb.debian.org/debian";

/**
 * The `Date:` of a Release or InRelease file (RFC 2822, when the mirror
 * published what it holds) as seconds since the epoch; undefined when there
 * is none or it is no date. Pure: what the mirror sent is only read.
 */
export function releaseDateEpoch(release: string): number | undefined {
  const line = /^Date:[ \t]*([^\r\n]{1,64})$/m.exec(release);
  if (line === null) return undefined;
  const ms = Date.parse(line[1]!);
  return Number.isFinite(ms) && ms > 0 ? Math.floor(ms / 1000) : undefined;
}

/** Release files to read for `suite` on a mirror, in order: the signed one first. */
export function releaseUrls(mirror: string, suite: string, flat: boolean): string[] {
  const base = mirror.endsWith("/") ? mirror : `${mirror}/`;
  const dir = flat ? base : `${base}dists/${encodeURIComponent(suite)}/`;
  return [`${dir}InRelease`, `${dir}Release`];
}

/**
 * The image's own package manager, as shell commands for the build VM:
 * apt (Debian, Ubuntu), apk (Alpine), dnf (Fedora), detected by the binary
 * the image has. Pure: every function returns a command line.
 */
import { SkiffError } from "../errors.js";

export type PackageManager = "apt" | "apk" | "dnf";

/** Prints apt, apk, dnf or nothing. */
export const detectScript =
  "if [ -x /usr/bin/apt-get ]; then echo apt; elif [ -x /sbin/apk ]; then echo apk; elif [ -x /usr/bin/dnf ]; then echo dnf; fi";

export function parseDetected(output: string, layer: string): PackageManager {
  const pm = output.trim();
  if (pm === "apt" || pm === "apk" || pm === "dnf") return pm;
  throw new SkiffError("ERR_SKIFF_BUILD_FAILED", `layer ${layer} installs packages, but the image has no package manager skiff knows (apt-get, apk or dnf)`, {
    hint: "build on an image with one (e.g. `debian`, made by `skiff image bootstrap`), or install the files with `binary`/`configs`",
  });
}

/** POSIX-shell single quoting. */
export function shq(word: string): string {
  return /^[A-Za-z0-9_./:=+,@%-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** What runs once before the first install (apt's package lists). */
export function prepareCommand(pm: PackageManager): string | undefined {
  return pm === "apt" ? "apt-get update" : undefined;
}

export function installCommand(pm: PackageManager, packages: readonly string[]): string {
  const names = packages.map(shq).join(" ");
  switch (pm) {
    case "apt":
      // Keep a config file a layer copies in over the package's own (confold). No fsync per file
      // (unsafe-io): a build that fails is thrown away, and the build syncs before it powers off.
      return `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io ${names}`;
    case "apk":
      return `apk add --no-cache ${names}`;
    case "dnf":
      return `dnf install -y --setopt=install_weak_deps=False ${names}`;
  }
}

/** One sources.list line: `deb [trusted=yes] URL/ WHAT`. */
export function aptSourceLine(url: string, what: string, trusted: boolean): string {
  return `deb ${trusted ? "[trusted=yes] " : ""}${url.endsWith("/") ? url : `${url}/`} ${what}`;
}

/** Package caches and lists: not part of the image. */
export function cleanCommand(pm: PackageManager): string {
  switch (pm) {
    case "apt":
      return "apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin";
    case "apk":
      return "rm -rf /var/cache/apk/*";
    case "dnf":
      return "dnf clean all";
  }
}

/**
 * Keep packages' maintainer scripts from starting daemons in the build VM
 * (Debian's policy-rc.d, as Docker images do); `undo` removes it again
 * unless the image had its own.
 */
export const policyRcD = {
  install:
    "if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && touch /usr/sbin/.skiff-policy-rc.d; fi",
  undo: "if [ -e /usr/sbin/.skiff-policy-rc.d ]; then rm -f /usr/sbin/policy-rc.d /usr/sbin/.skiff-policy-rc.d; fi",
};

/**
 * apt's sources swapped for one mirror during the build, and put back after,
 * so the image keeps its real sources. `flat`: a flat repository
 * (`deb URL ./`); otherwise a Debian mirror for the image's own release
 * (VERSION_CODENAME of /etc/os-release). `trusted`: no signature checks
 * (a repository of the user's own on loopback, e.g. the tests').
 */
export function aptMirrorCommands(url: string, opts: { flat: boolean; trusted: boolean }): { use: string; restore: string } {
  const line = aptSourceLine(url, opts.flat ? "./" : "$VERSION_CODENAME main", opts.trusted);
  return {
    use: [
      "set -e",
      "mkdir -p /etc/apt/.skiff-saved",
      "for f in /etc/apt/sources.list /etc/apt/sources.list.d; do if [ -e $f ]; then mv $f /etc/apt/.skiff-saved/; fi; done",
      "mkdir -p /etc/apt/sources.list.d",
      ". /etc/os-release",
      `echo "${line}" > /etc/apt/sources.list`,
    ].join("\n"),
    restore: [
      "set -e",
      "if [ -d /etc/apt/.skiff-saved ]; then rm -rf /etc/apt/sources.list /etc/apt/sources.list.d",
      "for f in /etc/apt/.skiff-saved/* /etc/apt/.skiff-saved/.[!.]*; do if [ -e \"$f\" ]; then mv \"$f\" /etc/apt/; fi; done",
      "rmdir /etc/apt/.skiff-saved; fi",
    ].join("\n"),
  };
}

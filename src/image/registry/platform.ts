/**
 * Platforms ("linux/arm64/v8") and choosing one manifest from an index,
 * normalised as containerd does, so "linux/arm64", "linux/arm64/v8" and
 * "linux/aarch64" name the same thing and an amd64 "v1" is plain amd64.
 */
import { SkiffError } from "../../errors.js";
import type { Platform } from "../oci/types.js";
import type { IndexEntry } from "./manifest.js";

/** What skiff boots: x86-64 QEMU. */
export const defaultPlatform: Platform = { os: "linux", architecture: "amd64" };

const platformHint = 'a platform is OS/ARCH[/VARIANT], e.g. "linux/amd64" or "linux/arm64/v8"';

/** Parse "linux/arm64/v8" (or just "arm64", meaning linux). */
export function parsePlatform(text: string, place?: string): Platform {
  const parts = text.split("/");
  if (parts.length === 1) parts.unshift("linux");
  if (parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new SkiffError("ERR_SKIFF_USAGE", `invalid platform ${JSON.stringify(text)}`, {
      hint: platformHint,
      ...(place === undefined ? {} : { place }),
    });
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform({ os, architecture, ...(variant === undefined ? {} : { variant }) });
}

export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() ?? "";
  switch (architecture) {
    case "x86_64":
    case "x86-64":
    case "amd64":
      architecture = "amd64";
      if (variant === "v1") variant = "";
      break;
    case "aarch64":
    case "arm64":
      architecture = "arm64";
      if (variant === "8" || variant === "v8" || variant === "v8.0") variant = "";
      break;
    case "armhf":
      architecture = "arm";
      variant = "v7";
      break;
    case "armel":
      architecture = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === "") variant = "v7";
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
    case "i386":
    case "i686":
      architecture = "386";
      break;
  }
  return { os, architecture, ...(variant === "" ? {} : { variant }) };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** True if an image built for `have` is what was asked for as `want`. */
export function platformMatches(have: Platform, want: Platform): boolean {
  const a = normalizePlatform(have);
  const b = normalizePlatform(want);
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? "") === (b.variant ?? "");
}

/** Index entries that are images for a platform (not attestations or other artifacts). */
export function platformEntries(entries: IndexEntry[]): Array<IndexEntry & { platform: Platform }> {
  return entries.filter(
    (e): e is IndexEntry & { platform: Platform } =>
      e.platform !== undefined &&
      e.platform.os !== "unknown" &&
      e.platform.architecture !== "unknown" &&
      e.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest",
  );
}

/**
 * The manifest for `want` from an index: an exact (normalised) match, or
 * when no variant was asked for, the first entry of that OS and architecture.
 * ERR_SKIFF_PLATFORM lists what the index does offer.
 */
export function selectPlatform(entries: IndexEntry[], want: Platform, where: string): IndexEntry & { platform: Platform } {
  const candidates = platformEntries(entries);
  const exact = candidates.find((e) => platformMatches(e.platform, want));
  if (exact) return exact;
  const w = normalizePlatform(want);
  if (w.variant === undefined) {
    const loose = candidates.find((e) => {
      const n = normalizePlatform(e.platform);
      return n.os === w.os && n.architecture === w.architecture;
    });
    if (loose) return loose;
  }
  throw platformError(where, want, candidates.map((e) => e.platform));
}

export function platformError(where: string, want: Platform, available: Platform[]): SkiffError {
  const list = [...new Set(available.map((p) => formatPlatform(normalizePlatform(p))))];
  return new SkiffError(
    "ERR_SKIFF_PLATFORM",
    `${where} has no image for ${formatPlatform(normalizePlatform(want))}; it has: ${list.length ? list.join(", ") : "no platform-specific images"}`,
    {
      hint: list.length ? `choose one as the platform (e.g. ${list[0]}), or use an image built for ${formatPlatform(want)}` : "use an image built for this platform",
      place: where,
      details: { wanted: formatPlatform(want), available: list },
    },
  );
}

/**
 * An apt mirror for a layer build (`aptMirror`, SKIFF_APT_MIRROR). One on
 * the host's loopback is reached from the build VM through a user-net
 * guestfwd (10.0.2.100:80 → 127.0.0.1:PORT), which restrict=on lets
 * through, so such a build needs no other network at all. Whether it is a
 * flat repository (`deb URL ./`: a Packages index at its top) or a Debian
 * mirror (`dists/<suite>/…`) is asked of the mirror itself.
 */
import { SkiffError } from "../errors.js";
import type { GuestForward } from "../spec/machine.js";

/** Where the guest finds a loopback mirror. */
export const mirrorGuestAddress = "10.0.2.100";

export interface AptMirrorPlan {
  /** The URL as given. */
  url: string;
  /** The URL as the guest reaches it. */
  guestUrl: string;
  flat: boolean;
  /** No signature checks: a mirror on loopback is the user's own (an unsigned test repository). */
  trusted: boolean;
  /** Set for a loopback mirror. */
  guestForward?: GuestForward;
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The mirror as the guest sees it; pure. */
export function mirrorRoute(url: string, place = "aptMirror"): Omit<AptMirrorPlan, "flat" | "trusted"> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SkiffError("ERR_SKIFF_USAGE", `not a URL: ${JSON.stringify(url)}`, { place, hint: "e.g. http://127.0.0.1:3142/debian" });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new SkiffError("ERR_SKIFF_USAGE", `an apt mirror is an http(s) URL, got ${url}`, { place });
  }
  if (!isLoopbackHost(parsed.hostname)) return { url, guestUrl: url };
  if (parsed.protocol !== "http:") {
    throw new SkiffError("ERR_SKIFF_USAGE", `a loopback apt mirror must be plain http (the guest reaches it at ${mirrorGuestAddress}): ${url}`, { place });
  }
  const hostPort = parsed.port === "" ? 80 : Number(parsed.port);
  const hostAddress = parsed.hostname === "localhost" ? "127.0.0.1" : parsed.hostname;
  return {
    url,
    guestUrl: `http://${mirrorGuestAddress}${parsed.pathname}`,
    guestForward: { guestAddress: mirrorGuestAddress, guestPort: 80, hostAddress, hostPort },
  };
}

/** mirrorRoute, plus a look at the mirror: flat or not, and reachable at all. */
export async function planAptMirror(url: string, place = "aptMirror"): Promise<AptMirrorPlan> {
  const route = mirrorRoute(url, place);
  const base = url.endsWith("/") ? url : `${url}/`;
  const trusted = route.guestForward !== undefined;
  for (const index of ["Packages", "Packages.gz", "Packages.xz"]) {
    if (await answers(`${base}${index}`)) return { ...route, flat: true, trusted };
  }
  if (route.guestForward !== undefined && !(await answers(base, true))) {
    throw new SkiffError("ERR_SKIFF_USAGE", `the apt mirror does not answer: ${url}`, { place, hint: "start it first, or leave the mirror out to use the image's own sources" });
  }
  return { ...route, flat: false, trusted };
}

async function answers(url: string, anyStatus = false): Promise<boolean> {
  try {
    const res = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(5_000) });
    return anyStatus || res.ok;
  } catch {
    return false;
  }
}

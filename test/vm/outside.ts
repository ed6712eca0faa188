/**
 * Two network namespaces a test makes: "host" (where skiff and its QEMUs
 * run) and "outside" (the world beyond the host's default route), joined by
 * a veth pair: host 192.0.2.1/24, outside 192.0.2.2/24 (TEST-NET-1, never
 * routed anywhere real). Traffic that reaches "outside" left "host" the way
 * it would leave a real host, and never leaves the machine.
 */
import { execFileSync } from "node:child_process";

export function makeHostAndOutside(hostNs: string, outNs: string): void {
  for (const ns of [hostNs, outNs]) {
    execFileSync("ip", ["netns", "add", ns]);
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }
  execFileSync("ip", ["-n", hostNs, "link", "add", "vout", "type", "veth", "peer", "name", "vin", "netns", outNs]);
  execFileSync("ip", ["-n", hostNs, "addr", "add", "192.0.2.1/24", "dev", "vout"]);
  execFileSync("ip", ["-n", hostNs, "link", "set", "vout", "up"]);
  execFileSync("ip", ["-n", outNs, "addr", "add", "192.0.2.2/24", "dev", "vin"]);
  execFileSync("ip", ["-n", outNs, "link", "set", "vin", "up"]);
  execFileSync("ip", ["-n", hostNs, "route", "add", "default", "via", "192.0.2.2"]);
}

export function removeNamespaces(...names: string[]): void {
  for (const ns of names) execFileSync("ip", ["netns", "del", ns]);
}

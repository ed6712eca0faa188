/**
 * Port forwards on user networking (`-p`), Docker's notation:
 * `[ip:]hostPort:guestPort[/tcp|udp]`, `ip::guestPort` or `guestPort` for a
 * host port chosen by skiff. Forwards bind 127.0.0.1 unless an address is
 * given: a VM's services are not the LAN's business until the user says so.
 */
import { SkiffError } from "../errors.js";
import { dgram, net } from "../util/builtins.js";
import type { PortForward } from "../spec/machine.js";
import { parseIpv4 } from "./ipam.js";

const defaultHostAddress = "127.0.0.1";

function port(text: string, value: string, place: string, allowZero = false): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(n >= (allowZero ? 0 : 1) && n <= 65535)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `not a port in ${JSON.stringify(value)}: ${JSON.stringify(text)}`, {
      place,
      hint: "write [ip:]hostPort:guestPort[/tcp|udp], ports from 1 to 65535, e.g. 8080:80",
    });
  }
  return n;
}

/** One `-p` value; hostPort 0 means "pick a free one" (resolved at create). */
export function parsePublish(value: string, place = "publish"): PortForward {
  const [spec, proto = "tcp", ...rest] = value.trim().split("/");
  if (rest.length > 0 || (proto !== "tcp" && proto !== "udp")) {
    throw new SkiffError("ERR_SKIFF_USAGE", `unknown protocol in ${JSON.stringify(value)}`, { place, hint: "use /tcp (the default) or /udp" });
  }
  const parts = (spec ?? "").split(":");
  let hostAddress = defaultHostAddress;
  let hostPort: string;
  let guestPort: string;
  if (parts.length === 1) [hostPort, guestPort] = ["0", parts[0]!];
  else if (parts.length === 2) [hostPort, guestPort] = [parts[0]!, parts[1]!];
  else if (parts.length === 3) [hostAddress, hostPort, guestPort] = [parts[0]!, parts[1]! === "" ? "0" : parts[1]!, parts[2]!];
  else {
    throw new SkiffError("ERR_SKIFF_USAGE", `cannot read port forward ${JSON.stringify(value)}`, {
      place,
      hint: "write [ip:]hostPort:guestPort[/tcp|udp]; QEMU user networking forwards IPv4 only",
    });
  }
  if (parseIpv4(hostAddress) === undefined) {
    throw new SkiffError("ERR_SKIFF_USAGE", `QEMU user networking cannot forward from host address ${JSON.stringify(hostAddress)}`, {
      place,
      hint: "use an IPv4 address such as 127.0.0.1, or 0.0.0.0 for all addresses",
    });
  }
  return { protocol: proto, hostAddress, hostPort: port(hostPort, value, place, true), guestPort: port(guestPort, value, place) };
}

export function formatForward(f: PortForward): string {
  return `${f.hostAddress}:${f.hostPort}->${f.guestPort}/${f.protocol}`;
}

/** Two forwards clash when they would bind the same host port (0.0.0.0 clashes with every address). */
export function forwardsClash(a: PortForward, b: PortForward): boolean {
  const any = (x: string) => x === "0.0.0.0" || x === "";
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostAddress === b.hostAddress || any(a.hostAddress) || any(b.hostAddress));
}

/** Whether `f`'s host port can be bound right now. */
export async function hostPortFree(f: Pick<PortForward, "protocol" | "hostAddress" | "hostPort">): Promise<boolean> {
  const host = f.hostAddress === "" ? "0.0.0.0" : f.hostAddress;
  return new Promise((resolve) => {
    if (f.protocol === "udp") {
      const sock = dgram().createSocket("udp4");
      sock.once("error", () => resolve(false));
      sock.bind(f.hostPort, host, () => sock.close(() => resolve(true)));
      return;
    }
    const server = net().createServer();
    server.once("error", () => resolve(false));
    server.listen(f.hostPort, host, () => server.close(() => resolve(true)));
  });
}

/** A port on `host` free right now and not in `used`. */
export async function freeLoopbackPort(used: ReadonlySet<number>, host = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const found = await new Promise<number>((resolve, reject) => {
      const server = net().createServer();
      server.once("error", reject);
      server.listen(0, host, () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
      });
    });
    if (found !== 0 && !used.has(found)) return found;
  }
  throw new SkiffError("ERR_SKIFF_HOST", `no free TCP port on ${host}`);
}

/**
 * Give every forward a host port (choosing free ones for hostPort 0) and
 * refuse any that clashes with `taken` (other VMs' forwards) or that the
 * host cannot bind now; `place` is the option field they came from.
 */
export async function resolveForwards(
  forwards: readonly PortForward[],
  taken: readonly { vm: string; forward: PortForward }[],
  place = "network.forwards",
): Promise<PortForward[]> {
  const out: PortForward[] = [];
  const usedPorts = new Set(taken.map((t) => t.forward.hostPort));
  for (const f of forwards) {
    const resolved = f.hostPort === 0 ? { ...f, hostPort: await freeLoopbackPort(usedPorts, f.hostAddress) } : f;
    usedPorts.add(resolved.hostPort);
    const clash = [...taken, ...out.map((forward) => ({ vm: "this VM", forward }))].find((t) => forwardsClash(t.forward, resolved));
    if (clash !== undefined) {
      throw new SkiffError("ERR_SKIFF_PORT_IN_USE", `host port ${resolved.hostAddress}:${resolved.hostPort}/${resolved.protocol} is already forwarded to ${clash.vm}`, {
        place,
        hint: "publish on another host port, or remove the other VM",
      });
    }
    if (!(await hostPortFree(resolved))) {
      throw new SkiffError("ERR_SKIFF_PORT_IN_USE", `host port ${resolved.hostAddress}:${resolved.hostPort}/${resolved.protocol} is in use on this host`, {
        place,
        hint: "stop whatever listens there, or publish on another host port",
      });
    }
    out.push(resolved);
  }
  return out;
}

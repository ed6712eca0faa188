/**
 * The flags of `run` and `create` (spec-flags.ts) as the engine's
 * CreateOptions, with the user's settings file for what they leave out.
 */
import { homedir } from "node:os";
import { resolve as resolvePath } from "node:path";
import { parseCpus, parseDiskSize, parseEnvList, parseMemory, restrictUserNetByDefault, SkiffError, type NetworkSpec } from "../pure.js";
// Loaded only by the verbs that create VMs (after the engine): the library's whole API is here already.
import { parseEgress, parseIpv4, parsePublish, validateNetworkName, type CreateOptions, type MountRequest, type NetworkRequest } from "../index.js";
import { withSettings, type UserSettings } from "./settings.js";
import type { MachineFlags } from "./spec-flags.js";

/**
 * `--network` values as Docker reads them: none given means user networking;
 * given, only what is listed — `user`, `none` (alone), named networks. The
 * user-net NIC and named networks may be combined.
 */
export function networksFrom(flags: Pick<MachineFlags, "network" | "ip" | "publish">): { network: NetworkSpec; networks: NetworkRequest[] } {
  const restrict = restrictUserNetByDefault();
  const forwards = flags.publish.map((p) => parsePublish(p, "--publish"));
  const values = flags.network.length === 0 ? ["user"] : flags.network;
  if (values.includes("none") && values.length > 1) {
    throw new SkiffError("ERR_SKIFF_USAGE", "--network none cannot be combined with other networks", { place: "--network", hint: "give none alone" });
  }
  const user = values.includes("user");
  if (!user && forwards.length > 0) {
    throw new SkiffError("ERR_SKIFF_USAGE", "-p forwards ports over user networking, which this VM does not have", {
      place: "--publish",
      hint: "add --network user (it can be combined with named networks)",
    });
  }
  const networks = values.filter((v) => v !== "user" && v !== "none").map((v) => networkRequest(v));
  if (flags.ip !== undefined) {
    if (networks.length !== 1) {
      throw new SkiffError("ERR_SKIFF_USAGE", "--ip needs exactly one named --network", {
        place: "--ip",
        hint: "with several networks write --network name=NET,ip=ADDR for each",
      });
    }
    networks[0] = { ...networks[0]!, ip: flags.ip, place: "--ip" };
  }
  return { network: user ? { mode: "user", restrict, forwards } : { mode: "none" }, networks };
}

/** `NAME` or `name=NAME,ip=ADDR`. */
function networkRequest(value: string): NetworkRequest {
  if (!value.includes("=")) return { network: validateNetworkName(value, "--network"), place: "--network" };
  const fields = new Map<string, string>();
  for (const part of value.split(",")) {
    const [k, v] = part.split("=", 2);
    if (v === undefined || (k !== "name" && k !== "ip")) {
      throw new SkiffError("ERR_SKIFF_USAGE", `cannot read --network ${JSON.stringify(value)}`, { place: "--network", hint: "write NAME or name=NAME,ip=ADDR" });
    }
    fields.set(k, v);
  }
  const name = fields.get("name");
  if (name === undefined) throw new SkiffError("ERR_SKIFF_USAGE", `--network ${value} names no network`, { place: "--network", hint: "write name=NAME,ip=ADDR" });
  const ip = fields.get("ip");
  return { network: validateNetworkName(name, "--network"), place: "--network", ...(ip === undefined ? {} : { ip }) };
}

/** Create options from the flags, with the user's settings (settings.ts: loadSettings) for what they leave out. */
export function createOptionsFrom(image: string, command: string[], given: MachineFlags, settings: UserSettings): CreateOptions {
  const flags = withSettings(given, settings);
  return {
    image,
    command,
    ...(flags.name === undefined ? {} : { name: flags.name }),
    ...(flags.cpus === undefined ? {} : { cpus: parseCpus(flags.cpus) }),
    ...(flags.memory === undefined ? {} : { memoryMiB: parseMemory(flags.memory) }),
    ...(flags.kernel === undefined ? {} : { kernel: { path: kernelFlag(flags.kernel) } }),
    env: parseEnvList(flags.env),
    ...(flags.entrypoint === undefined ? {} : { entrypoint: flags.entrypoint === "" ? [] : [flags.entrypoint] }),
    ...(flags.user === undefined ? {} : { user: flags.user }),
    ...(flags.workdir === undefined ? {} : { workingDir: flags.workdir }),
    ...(flags.platform === undefined ? {} : { platform: flags.platform }),
    ...(flags.pull === undefined ? {} : { pull: pullPolicy(flags.pull) }),
    ...networksFrom(flags),
    ...(flags.dns.length === 0 ? {} : { dns: flags.dns.map(checkDns) }),
    autoRemove: flags.rm === true,
    ...(flags.imageUrl === undefined ? {} : { imageUrl: flags.imageUrl }),
    ...(flags.disk === undefined ? {} : { diskBytes: parseDiskSize(flags.disk) }),
    ...(flags.userData === undefined ? {} : { userDataPath: flags.userData }),
    ...((flags.volume ?? []).length === 0 ? {} : { mounts: flags.volume.map((v) => parseVolumeFlag(v)) }),
    ...egressFrom(flags),
    ...restartFrom(flags),
  };
}

/** `--kernel`: a name (debian, skiff, an id) as given, a path made absolute from here (`~` is the user's home). */
function kernelFlag(value: string): string {
  if (!value.includes("/") && !value.startsWith(".") && !value.startsWith("~")) return value;
  return value === "~" || value.startsWith("~/") ? resolvePath(homedir(), value.slice(2)) : resolvePath(value);
}

/**
 * `run --from`: a restored VM is the snapshot's machine (its memory, CPUs,
 * networks, environment, mounts are in the snapshot's RAM and device state),
 * so a flag that would change it is refused, naming it, rather than ignored.
 * Only the settings file's defaults are not: they are defaults, not asks.
 */
export function checkFromSnapshotFlags(given: MachineFlags & { cold?: boolean }): void {
  const asked: [string, boolean][] = [
    ["--cpus", given.cpus !== undefined],
    ["--memory", given.memory !== undefined],
    ["--kernel", given.kernel !== undefined],
    ["--env", given.env.length > 0],
    ["--network", given.network.length > 0],
    ["--ip", given.ip !== undefined],
    ["--dns", given.dns.length > 0],
    ["--volume", given.volume.length > 0],
    ["--egress", given.egress.length > 0],
    ["--host-loopback", given.hostLoopback === true],
    ["--restart", given.restart !== undefined],
    ["--entrypoint", given.entrypoint !== undefined],
    ["--user", given.user !== undefined],
    ["--workdir", given.workdir !== undefined],
    ["--platform", given.platform !== undefined],
    ["--pull", given.pull !== undefined],
    ["--image-url", given.imageUrl !== undefined],
    ["--disk", given.disk !== undefined],
    ["--user-data", given.userData !== undefined],
    ["--cold", given.cold === true],
  ];
  const flag = asked.find(([, on]) => on)?.[0];
  if (flag === undefined) return;
  throw new SkiffError("ERR_SKIFF_USAGE", `run --from cannot take ${flag}: a VM restored from a snapshot is the snapshot's machine`, {
    place: flag,
    hint: "drop it (--from takes --name, -p, --rm, -d, -i, -t and a command); `skiff snapshot inspect SNAPSHOT` shows the machine",
  });
}

/** `--egress` words and `--host-loopback`: checked here, host names resolved by the library at create. */
function egressFrom(flags: Pick<MachineFlags, "egress" | "hostLoopback">): Pick<CreateOptions, "egress"> {
  if ((flags.egress ?? []).length === 0 && flags.hostLoopback !== true) return {};
  const { policy, destinations } = parseEgress(flags.egress ?? []);
  return { egress: { policy, allow: destinations, hostLoopback: flags.hostLoopback === true, place: "--egress" } };
}

function restartFrom(flags: Pick<MachineFlags, "restart" | "rm">): Pick<CreateOptions, "restart"> {
  if (flags.restart === undefined) return {};
  const policies = ["no", "on-failure", "always", "unless-stopped"] as const;
  const policy = policies.find((p) => p === flags.restart);
  if (policy === undefined) {
    throw new SkiffError("ERR_SKIFF_USAGE", `unknown restart policy: ${flags.restart}`, { place: "--restart", hint: `use one of ${policies.join(", ")}` });
  }
  if (policy !== "no" && flags.rm === true) {
    throw new SkiffError("ERR_SKIFF_USAGE", "--restart and --rm cannot be combined", { place: "--restart", hint: "a VM removed when it stops cannot be started again" });
  }
  return { restart: policy };
}

function checkDns(ip: string): string {
  if (parseIpv4(ip) === undefined) throw new SkiffError("ERR_SKIFF_USAGE", `not an IPv4 address: ${ip}`, { place: "--dns", hint: "e.g. --dns 10.0.2.3" });
  return ip;
}

function pullPolicy(value: string): "missing" | "always" | "never" {
  if (value === "missing" || value === "always" || value === "never") return value;
  throw new SkiffError("ERR_SKIFF_USAGE", `unknown pull policy: ${value}`, { place: "--pull", hint: "use missing, always or never" });
}

/**
 * `-v SRC:DST[:ro|:rw]` as Docker reads it: a SRC starting with `/`, `.` or
 * `~` is a host directory (made absolute here), anything else names a
 * volume, made if missing.
 */
export function parseVolumeFlag(value: string, cwd = process.cwd(), home = homedir()): MountRequest {
  const place = "--volume";
  const parts = value.split(":");
  const last = parts.at(-1);
  const mode = parts.length >= 3 && (last === "ro" || last === "rw") ? parts.pop() : undefined;
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new SkiffError("ERR_SKIFF_USAGE", `cannot read --volume ${JSON.stringify(value)}`, {
      place,
      hint: "write SRC:DST or SRC:DST:ro, e.g. -v ./src:/src or -v data:/var/lib/data",
    });
  }
  const [source, target] = parts as [string, string];
  const readOnly = mode === "ro";
  if (/^[/.~]/.test(source)) {
    const expanded = source === "~" || source.startsWith("~/") ? home + source.slice(1) : source;
    return { kind: "bind", source: resolvePath(cwd, expanded), target, readOnly, place };
  }
  return { kind: "volume", volume: source, target, readOnly, place, create: true };
}

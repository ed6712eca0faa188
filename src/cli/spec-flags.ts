/**
 * Flags shared by `run` and `create`, turned into the engine's CreateOptions.
 */
import { homedir } from "node:os";
import { resolve as resolvePath } from "node:path";
import type { Command } from "commander";
import type { CreateOptions } from "../engine/skiff.js";
import { parseCpus, parseDiskSize, parseEnvList, parseMemory } from "../util/units.js";
import { restrictUserNetByDefault, type NetworkSpec } from "../spec/machine.js";
import { SkiffError } from "../errors.js";
import { parseIpv4 } from "../network/ipam.js";
import { parseEgress } from "../network/egress.js";
import { loadSettings, withSettings, type UserSettings } from "./settings.js";
import { parsePublish } from "../network/ports.js";
import { validateNetworkName } from "../network/store.js";
import type { NetworkRequest } from "../engine/vm-network.js";
import type { MountRequest } from "../engine/volumes.js";

export interface MachineFlags {
  name?: string;
  entrypoint?: string;
  user?: string;
  workdir?: string;
  platform?: string;
  pull?: string;
  env: string[];
  cpus?: string;
  memory?: string;
  network: string[];
  ip?: string;
  dns: string[];
  publish: string[];
  rm?: boolean;
  imageUrl?: string;
  disk?: string;
  userData?: string;
  volume: string[];
  egress: string[];
  hostLoopback?: boolean;
  restart?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `-e` everywhere it is taken: KEY alone is the host's value, or nothing when the host has none (Docker's rule, parseEnv). */
export const envFlags = "-e, --env <KEY[=VALUE]>";
export function envHelp(what: string): string {
  return `${what} (repeatable); KEY alone passes the host's $KEY, and nothing when the host has no KEY`;
}

export function addMachineFlags(cmd: Command): Command {
  return cmd
    .option("--name <name>", "name of the VM (default: a generated one)")
    .option(envFlags, envHelp("environment for commands in the VM"), collect, [])
    .option("--cpus <n>", "virtual CPUs (default 1)")
    .option("-m, --memory <size>", "memory, e.g. 256m or 1g (default 256m)")
    .option("--network <net>", "user (the default: QEMU user networking), none, or a network from `skiff network ls`; repeatable; name=NET,ip=ADDR to pick the address", collect, [])
    .option("--ip <addr>", "the VM's address on the (one) named network given with --network")
    .option("-p, --publish <[ip:]host:guest[/proto]>", "forward a host port to the VM over user networking (repeatable; binds 127.0.0.1 unless an ip is given)", collect, [])
    .option("--dns <ip>", "nameserver for the VM (repeatable; default: user networking's, else the host's)", collect, [])
    .option("--egress <policy>", "where the VM may connect over user networking: all (the default, but the host's loopback), deny, or allow=HOST[:PORT],CIDR[:PORT],… (repeatable); enforced on the host", collect, [])
    .option("--host-loopback", "let the VM reach services on the host's 127.0.0.1 (at 10.0.2.2); refused by default")
    .option("--restart <policy>", "start the VM again when its QEMU ends: no (the default), on-failure, always, unless-stopped")
    .option("--entrypoint <cmd>", "replace the image's entrypoint (and drop its Cmd)")
    .option("-u, --user <user>", "default user of commands in the VM (name or uid[:gid])")
    .option("-w, --workdir <dir>", "default working directory of commands in the VM")
    .option("--platform <os/arch[/variant]>", "platform to pull when the image is not here yet (default linux/amd64)")
    .option("--pull <policy>", "missing (default: pull when not here), always, never")
    .option("--image-url <url>", "boot a cloud image (qcow2/raw, .zst/.xz/.gz; URL or path) on q35, reached over SSH")
    .option("--disk <size>", "cloud images: grow the disk to this size, e.g. 20G")
    .option("--user-data <file>", "cloud images: cloud-init user-data to merge (#cloud-config) or use instead")
    .option("-v, --volume <src:dst[:ro]>", "mount a host directory (SRC starts with /, . or ~; live, both ways) or a named volume (made if missing) at DST (repeatable)", collect, []);
}

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

/** Create options from the flags, with the user's settings file (settings.ts) for what they leave out. */
export function createOptionsFrom(image: string, command: string[], given: MachineFlags, settings: UserSettings = loadSettings()): CreateOptions {
  const flags = withSettings(given, settings);
  return {
    image,
    command,
    ...(flags.name === undefined ? {} : { name: flags.name }),
    ...(flags.cpus === undefined ? {} : { cpus: parseCpus(flags.cpus) }),
    ...(flags.memory === undefined ? {} : { memoryMiB: parseMemory(flags.memory) }),
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

/**
 * Flags shared by `run` and `create`, turned into the engine's CreateOptions.
 */
import type { Command } from "commander";
import type { CreateOptions } from "../engine/skiff.js";
import { parseCpus, parseEnvList, parseMemory } from "../util/units.js";
import type { NetworkSpec } from "../spec/machine.js";
import { SkiffError } from "../errors.js";

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
  network?: string;
  rm?: boolean;
  imageUrl?: string;
  disk?: string;
  userData?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function addMachineFlags(cmd: Command): Command {
  return cmd
    .option("--name <name>", "name of the VM (default: a generated one)")
    .option("-e, --env <KEY=VALUE>", "environment for commands in the VM (repeatable)", collect, [])
    .option("--cpus <n>", "virtual CPUs (default 1)")
    .option("-m, --memory <size>", "memory, e.g. 256m or 1g (default 256m)")
    .option("--network <mode>", "user (default: QEMU user networking) or none")
    .option("--entrypoint <cmd>", "replace the image's entrypoint (and drop its Cmd)")
    .option("-u, --user <user>", "default user of commands in the VM (name or uid[:gid])")
    .option("-w, --workdir <dir>", "default working directory of commands in the VM")
    .option("--platform <os/arch[/variant]>", "platform to pull when the image is not here yet (default linux/amd64)")
    .option("--pull <policy>", "missing (default: pull when not here), always, never")
    .option("--image-url <url>", "boot a cloud image (qcow2/raw, .zst/.xz/.gz; URL or path) on q35, reached over SSH")
    .option("--disk <size>", "cloud images: grow the disk to this size, e.g. 20G")
    .option("--user-data <file>", "cloud images: cloud-init user-data to merge (#cloud-config) or use instead");
}

export function networkFrom(flag: string | undefined): NetworkSpec {
  // Tests (and cautious users) set SKIFF_USERNET_RESTRICT=1: the guest gets no route out of the host.
  const restrict = process.env.SKIFF_USERNET_RESTRICT === "1";
  if (flag === undefined || flag === "user") return { mode: "user", restrict, forwards: [] };
  if (flag === "none") return { mode: "none" };
  throw new SkiffError("ERR_SKIFF_USAGE", `unknown network mode: ${flag}`, { place: "--network", hint: "use `user` or `none`" });
}

export function createOptionsFrom(image: string, command: string[], flags: MachineFlags): CreateOptions {
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
    network: networkFrom(flags.network),
    autoRemove: flags.rm === true,
    ...(flags.imageUrl === undefined ? {} : { imageUrl: flags.imageUrl }),
    ...(flags.disk === undefined ? {} : { diskBytes: parseDiskSize(flags.disk) }),
    ...(flags.userData === undefined ? {} : { userDataPath: flags.userData }),
  };
}

function pullPolicy(value: string): "missing" | "always" | "never" {
  if (value === "missing" || value === "always" || value === "never") return value;
  throw new SkiffError("ERR_SKIFF_USAGE", `unknown pull policy: ${value}`, { place: "--pull", hint: "use missing, always or never" });
}

/** `--disk 20G`: bytes; K/M/G/T suffixes are binary (as qemu-img's). */
export function parseDiskSize(value: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(value.trim());
  if (!m) throw new SkiffError("ERR_SKIFF_USAGE", `not a disk size: ${value}`, { place: "--disk", hint: "e.g. 20G or 512M" });
  const unit = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[(m[2] ?? "").toUpperCase() as "" | "K" | "M" | "G" | "T"];
  return Number(m[1]) * unit;
}

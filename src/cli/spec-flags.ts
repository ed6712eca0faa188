/**
 * Flags shared by `run` and `create` (machine-options.ts turns them into
 * the engine's CreateOptions when the command runs). Every command's flags
 * are declared at start, for --help and completion, so this file imports
 * nothing heavy.
 */
import type { Command } from "commander";

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
  kernel?: string;
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
    .option("--kernel <kernel>", "the guest kernel: debian, skiff (the newest `skiff kernel build` made), a built kernel's id, or a vmlinux/bzImage path (default: `skiff kernel use`'s choice, else debian)")
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

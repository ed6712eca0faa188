/**
 * skiff volume create|ls|inspect|rm|prune: named volumes, each an ext4 disk
 * that VMs mount with `-v NAME:/dir` and that outlives them.
 */
import type { Command } from "commander";
import { formatAge, formatBytes, parseDiskSize, SkiffError } from "../../pure.js";
import type { VolumeInfo } from "../../index.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new SkiffError("ERR_SKIFF_USAGE", `cannot read --label ${JSON.stringify(v)}`, { place: "--label", hint: "write KEY=VALUE" });
    labels[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return labels;
}

function usedBy(v: VolumeInfo): string {
  return v.usedBy.length === 0 ? "-" : v.usedBy.map((u) => (u.state === "running" ? `${u.vm} (running)` : u.hibernated ? `${u.vm} (hibernated)` : u.vm)).join(", ");
}

export function registerVolume(program: Command, ctx: CliContext): void {
  const volume = program.command("volume").description("manage named volumes (ext4 disks that outlive VMs): create, ls, inspect, rm, prune");

  volume
    .command("create")
    .description("create a volume")
    .argument("<name>")
    .option("--size <size>", "size of its disk, e.g. 512m or 10g (default 1g; the file is sparse)")
    .option("--label <key=value>", "a label (repeatable)", collect, [])
    .action(async (name: string, flags: { size?: string; label: string[] }) => {
      const info = await (await ctx.client()).volumes.create({
        name,
        ...(flags.size === undefined ? {} : { sizeBytes: parseDiskSize(flags.size, "--size") }),
        labels: parseLabels(flags.label),
      });
      if (ctx.flags.json) process.stdout.write(JSON.stringify(info, null, 2) + "\n");
      else process.stdout.write(`${info.name}\n`);
    });

  volume
    .command("ls")
    .description("list volumes and the VMs that mount them")
    .option("-q, --quiet", "only names")
    .action(async (flags: { quiet?: boolean }) => {
      const vols = await (await ctx.client()).volumes.list();
      if (ctx.flags.json) process.stdout.write(JSON.stringify(vols, null, 2) + "\n");
      else if (flags.quiet === true) process.stdout.write(vols.map((v) => `${v.name}\n`).join(""));
      else {
        const now = Date.now();
        const rows = vols.map((v) => [v.name, formatBytes(v.sizeBytes), formatAge(now - Date.parse(v.createdAt)), usedBy(v)]);
        process.stdout.write(table(["NAME", "SIZE", "CREATED", "USED BY"], rows));
      }
    });

  volume
    .command("inspect")
    .description("everything about volumes, as JSON: size, labels, disk file, the VMs that mount them and where")
    .argument("<names...>")
    .action(async (names: string[]) => {
      const volumes = (await ctx.client()).volumes;
      const infos = [];
      for (const name of names) infos.push(await volumes.inspect(name));
      process.stdout.write(JSON.stringify(infos, null, 2) + "\n");
    });

  volume
    .command("rm")
    .description("remove volumes and their data; refused while a VM mounts them (-f: unless it runs)")
    .argument("<names...>")
    .option("-f, --force", "remove even when stopped VMs mount it (their next start fails)")
    .action(async (names: string[], flags: { force?: boolean }) => {
      const volumes = (await ctx.client()).volumes;
      for (const name of names) {
        await volumes.remove(name, { force: flags.force === true });
        process.stdout.write(`${name}\n`);
      }
    });

  volume
    .command("prune")
    .description("remove every volume no VM mounts")
    .action(async () => {
      const volumes = (await ctx.client()).volumes;
      for (const v of await volumes.list()) {
        if (v.usedBy.length > 0) continue;
        await volumes.remove(v.name);
        process.stdout.write(`${v.name}\n`);
      }
    });
}

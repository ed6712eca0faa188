/**
 * skiff snapshot create|ls|inspect|rm|gc|prune, skiff restore and skiff
 * fork: memory snapshots of running VMs, new VMs from them, live clones.
 */
import type { Command } from "commander";
import { formatAge, formatBytes, SkiffError } from "../../pure.js";
import type { SnapshotInfo } from "../../index.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

function print(ctx: CliContext, value: unknown, text: string): void {
  process.stdout.write(ctx.flags.json ? JSON.stringify(value, null, 2) + "\n" : text);
}

function listText(snaps: readonly SnapshotInfo[]): string {
  const now = Date.now();
  const rows = snaps.map((s) => [
    s.id.slice(0, 12),
    s.name ?? "-",
    s.source,
    s.image,
    formatBytes(s.sizes.mem + s.sizes.state),
    formatBytes(s.sizes.disk + (s.sizes.volumes ?? 0)),
    formatAge(now - Date.parse(s.createdAt)),
    s.kind === "user" ? (s.usedBy.length === 0 ? "-" : s.usedBy.join(",")) : `${s.kind}${s.usedBy.length === 0 ? "" : `: ${s.usedBy.join(",")}`}`,
  ]);
  return table(["ID", "NAME", "VM", "IMAGE", "MEMORY", "DISK", "CREATED", "USED BY"], rows);
}

function count(value: string, place: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `${place} takes a whole number, not ${JSON.stringify(value)}`, { place, hint: `e.g. ${place} 3` });
  }
  return n;
}

export function registerSnapshot(program: Command, ctx: CliContext): void {
  const snapshot = program
    .command("snapshot")
    .description("memory snapshots of running VMs: create, ls, inspect, rm, gc, prune (restore with `skiff restore` or `run --from`)");

  snapshot
    .command("create")
    .description("snapshot a running VM (memory, devices, root disk, named volumes); it is paused only for the copy and runs on")
    .argument("<vm>")
    .option("--name <name>", "a name to find the snapshot by")
    .action(async (vm: string, flags: { name?: string }) => {
      const info = await (await ctx.client()).snapshot(vm, flags.name === undefined ? {} : { name: flags.name });
      print(ctx, info, `${info.name ?? info.id.slice(0, 12)}\n`);
    });

  snapshot
    .command("ls")
    .description("list snapshots (of one VM when named)")
    .argument("[vm]")
    .option("-q, --quiet", "only ids")
    .option("--json", "print JSON")
    .action(async (vm: string | undefined, flags: { quiet?: boolean }) => {
      const snaps = await (await ctx.client()).listSnapshots(vm);
      if (flags.quiet === true && !ctx.flags.json) process.stdout.write(snaps.map((s) => `${s.id.slice(0, 12)}\n`).join(""));
      else print(ctx, snaps, listText(snaps));
    });

  snapshot
    .command("inspect")
    .description("everything about snapshots, as JSON")
    .argument("<snapshots...>")
    .action(async (refs: string[]) => {
      const skiff = await ctx.client();
      const infos = [];
      for (const ref of refs) infos.push(await skiff.inspectSnapshot(ref));
      process.stdout.write(JSON.stringify(infos, null, 2) + "\n");
    });

  snapshot
    .command("rm")
    .description("remove snapshots; refused while VMs stand on them (-f removes those VMs too)")
    .argument("<snapshots...>")
    .option("-f, --force", "also remove the VMs restored from it (their disks stand on it)")
    .action(async (refs: string[], flags: { force?: boolean }) => {
      const skiff = await ctx.client();
      for (const ref of refs) {
        const gone = await skiff.removeSnapshot(ref, { force: flags.force === true });
        if (!ctx.flags.json) process.stdout.write(`${gone.name ?? gone.id.slice(0, 12)}\n`);
      }
    });

  snapshot
    .command("gc")
    .description("keep a VM's newest snapshots, remove the older ones (those VMs stand on stay)")
    .argument("<vm>")
    .requiredOption("--keep <n>", "how many to keep")
    .action(async (vm: string, flags: { keep: string }) => {
      const gone = await (await ctx.skiff()).gcSnapshots(vm, count(flags.keep, "--keep"));
      print(ctx, gone, gone.map((s) => `${s.name ?? s.id.slice(0, 12)}\n`).join(""));
    });

  snapshot
    .command("prune")
    .description("remove snapshots no VM stands on: unnamed ones (forks') and boot snapshots this host can no longer restore, or with -a named ones and all boot snapshots too")
    .option("-a, --all", "named ones and boot snapshots too")
    .action(async (flags: { all?: boolean }) => {
      const gone = await (await ctx.skiff()).pruneSnapshots({ all: flags.all === true });
      print(ctx, gone, gone.map((s) => `${s.name ?? s.id.slice(0, 12)}\n`).join(""));
    });

  program
    .command("restore")
    .description("a new VM from a snapshot, running where the snapshot left off (own name, hostname, addresses)")
    .argument("<snapshot>")
    .option("--name <name>", "name of the new VM (default: a generated one)")
    .action(async (ref: string, flags: { name?: string }) => {
      const info = await (await ctx.client()).restore(ref, flags.name === undefined ? {} : { name: flags.name });
      print(ctx, info, `${info.name}\n`);
    });

  program
    .command("fork")
    .description("live clones of a running VM (a snapshot, then restores): each its own name, addresses and disk")
    .argument("<vm>")
    .option("-n, --count <n>", "how many clones", "1")
    .option("--name <prefix>", "their names: PREFIX-1, PREFIX-2, … (default VM-fork-N)")
    .action(async (vm: string, flags: { count: string; name?: string }) => {
      const clones = await (await ctx.client()).fork(vm, { count: count(flags.count, "-n"), ...(flags.name === undefined ? {} : { prefix: flags.name }) });
      print(ctx, clones, clones.map((c) => `${c.name}\n`).join(""));
    });
}

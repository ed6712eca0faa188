/** ps and inspect. */
import type { Command } from "commander";
import { formatAge, formatDuration, SkiffError } from "../../pure.js";
import type { VmInfo } from "../../index.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

const lower = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1);

function stateColumn(info: VmInfo, now: number, pausedLabel: (reason: string) => string): string {
  if (info.state === "paused") return pausedLabel(info.pauseReason ?? "user");
  if (info.state === "running" && info.startedAt !== undefined) return `running (${formatDuration(now - Date.parse(info.startedAt))})`;
  if (info.state === "stopped" && info.hibernatedAt !== undefined) return `hibernated ${lower(formatAge(now - Date.parse(info.hibernatedAt)))}`;
  if (info.state === "stopped" && info.exit !== undefined) return `stopped ${lower(formatAge(now - Date.parse(info.exit.at)))}`;
  if (info.state === "crashed" && info.exit !== undefined) return `crashed ${lower(formatAge(now - Date.parse(info.exit.at)))}`;
  return info.state;
}

function memoryColumn(mib: number): string {
  return mib % 1024 === 0 ? `${mib / 1024}g` : `${mib}m`;
}

export function registerPs(program: Command, ctx: CliContext): void {
  program
    .command("ps")
    .option("--json", "print JSON")
    .description("list VMs (running, paused and restarting ones; -a for all)")
    .option("-a, --all", "show created, stopped and crashed VMs too")
    .option("--format <format>", "table (default) or json")
    .option("-q, --quiet", "only names")
    .action(async (flags: { all?: boolean; format?: string; quiet?: boolean }) => {
      if (flags.format !== undefined && flags.format !== "json" && flags.format !== "table") {
        throw new SkiffError("ERR_SKIFF_USAGE", `unknown format: ${flags.format}`, { place: "--format", hint: "use table or json" });
      }
      const [client, { pausedLabel }] = await Promise.all([ctx.client(), import("../../index.js")]);
      // Broken VMs are this host's records: a server lists the VMs it can run.
      const { vms: infos, broken } =
        ctx.remoteHost() === undefined ? await (await ctx.skiff()).listWithBroken({ all: flags.all === true }) : { vms: await client.list({ all: flags.all === true }), broken: [] };
      // Broken VMs (a record failed its check) are listed with -a, as stopped ones are, and always warned about.
      const shown = flags.all === true ? broken : [];
      if (flags.format === "json" || ctx.flags.json) {
        process.stdout.write(JSON.stringify([...infos, ...shown], null, 2) + "\n");
        return;
      }
      if (flags.quiet === true) {
        process.stdout.write([...infos, ...shown].map((i) => i.name + "\n").join(""));
        return;
      }
      const now = Date.now();
      const rows = infos.map((i) => [
        i.name,
        stateColumn(i, now, pausedLabel),
        i.image,
        String(i.cpus),
        memoryColumn(i.memoryMiB),
        formatAge(now - Date.parse(i.createdAt)),
        i.ports.join(", "),
      ]);
      for (const b of shown) rows.push([b.name, b.pid === undefined ? "broken" : `broken (QEMU pid ${b.pid})`, "", "", "", "", ""]);
      process.stdout.write(table(["NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "CREATED", "PORTS"], rows));
      for (const b of broken) process.stderr.write(`skiff: warning: VM ${b.name} is broken: ${b.reason}\n  hint: remove it with \`${b.hint}\`\n`);
    });

  program
    .command("inspect")
    .option("--json", "print JSON")
    .description("everything skiff knows about VMs, as JSON")
    .argument("<names...>")
    .action(async (names: string[]) => {
      const skiff = await ctx.client();
      const infos = [];
      for (const name of names) infos.push(await skiff.inspect(name));
      process.stdout.write(JSON.stringify(infos, null, 2) + "\n");
    });
}

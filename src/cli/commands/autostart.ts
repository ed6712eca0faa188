/** `skiff autostart enable|disable|ls`: VMs and projects started at host boot by systemd units. */
import type { Command } from "commander";
import type { AutostartTarget } from "../../index.js";
import type { CliContext } from "../context.js";

interface AutostartFlags {
  project?: boolean;
  file: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

async function targetsOf(ctx: CliContext, names: string[], flags: AutostartFlags): Promise<AutostartTarget[]> {
  if (flags.project !== true) {
    // Each VM must exist now; its unit starts it by name.
    const skiff = await ctx.skiff();
    for (const name of names) await skiff.inspect(name);
    return names.map((name) => ({ kind: "vm" as const, name }));
  }
  const { loadProject } = await import("../../index.js");
  const spec = await loadProject({
    cwd: process.cwd(),
    ...(flags.file.length === 0 ? {} : { files: flags.file }),
    ...(names[0] === undefined ? {} : { projectName: names[0] }),
  });
  return [{ kind: "project", name: spec.name, dir: spec.dir, files: spec.files }];
}

export function registerAutostart(program: Command, ctx: CliContext): void {
  const cmd = program.command("autostart").description("start VMs or a project when the host boots (a systemd unit each)");
  cmd
    .command("enable")
    .description("write and enable a unit that starts the VMs (or, with --project, `up -d` the project) at boot")
    .argument("[names...]", "VM names; with --project, the project name (default: the directory's)")
    .option("--project", "the project of this directory (or -f files) instead of VMs")
    .option("-f, --file <path>", "with --project: project file (repeatable)", collect, [])
    .addHelpText("after", "\nExamples:\n  skiff autostart enable web db\n  skiff autostart enable --project\n  skiff autostart ls")
    .action(async (names: string[], flags: AutostartFlags) => {
      const skiff = await ctx.skiff();
      for (const target of await targetsOf(ctx, names, flags)) {
        const { unit, enabled } = await skiff.enableAutostart(target);
        process.stdout.write(`${unit.unit}${enabled ? "" : " (written; systemd is not running here, it takes effect when the host boots with it)"}\n`);
      }
    });
  cmd
    .command("disable")
    .description("disable and remove the units of the VMs (or, with --project, of the project)")
    .argument("[names...]", "VM names; with --project, the project name")
    .option("--project", "the project of this directory (or -f files) instead of VMs")
    .option("-f, --file <path>", "with --project: project file (repeatable)", collect, [])
    .action(async (names: string[], flags: AutostartFlags) => {
      const skiff = await ctx.skiff();
      const targets = flags.project === true ? await targetsOf(ctx, names, flags) : names.map((name) => ({ kind: "vm" as const, name }));
      for (const target of targets) {
        const removed = await skiff.disableAutostart(target);
        process.stdout.write(`${target.name}${removed ? "" : " (had no unit)"}\n`);
      }
    });
  cmd
    .command("ls")
    .description("the units skiff wrote for this skiff home")
    .action(async () => {
      const units = await (await ctx.skiff()).listAutostart();
      if (ctx.flags.json) {
        process.stdout.write(`${JSON.stringify(units, null, 2)}\n`);
        return;
      }
      for (const u of units) process.stdout.write(`${u.kind.padEnd(8)} ${u.name.padEnd(20)} ${u.path}\n`);
    });
}

/** doctor and version. */
import type { Command } from "commander";
import { ExitCode, skiffVersion } from "../../pure.js";
import type { CliContext } from "../context.js";

export { skiffVersion };

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command("doctor")
    .option("--json", "print JSON")
    .description("check QEMU, acceleration, kernel, guest tools, the jail, cgroups and memory")
    .action(async () => {
      const report = await (await ctx.skiff()).doctor();
      if (ctx.flags.json) {
        process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      } else {
        for (const c of report.checks) {
          process.stdout.write(`${c.ok ? "ok  " : "FAIL"}  ${c.name.padEnd(12)} ${c.detail}\n`);
          if (!c.ok && c.fix !== undefined) process.stdout.write(`      ${"".padEnd(12)} fix: ${c.fix}\n`);
        }
      }
      if (!report.ok) ctx.exitCode = ExitCode.host;
    });

  program
    .command("version")
    .option("--json", "print JSON")
    .description("print skiff's version")
    .action(() => {
      const info = { skiff: skiffVersion(), node: process.version };
      process.stdout.write(ctx.flags.json ? JSON.stringify(info) + "\n" : `skiff ${info.skiff} (node ${info.node})\n`);
    });
}

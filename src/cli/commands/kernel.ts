/**
 * skiff kernel build|ls|use|rm: skiff's own guest kernel, built on this host
 * from Debian's linux-source, and which kernel new VMs boot.
 */
import type { Command } from "commander";
import { formatAge, formatBytes, formatDuration, SkiffError } from "../../pure.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

export function registerKernel(program: Command, ctx: CliContext): void {
  const kernel = program.command("kernel").description("guest kernels: build skiff's own, list them, choose the default, remove one");

  kernel
    .command("build")
    .description("build skiff's guest kernel from Debian's linux-source (everything built in: no modules); cached by its inputs")
    .option("--source <tarball>", "the source tarball (default: the newest /usr/src/linux-source-*.tar.xz)")
    .option("-j, --jobs <n>", "parallel compile jobs (default: the host's CPUs)")
    .option("--force", "build again even when the cache has this kernel")
    .option("--use", "make it the default kernel for new VMs")
    .option("--json", "print JSON")
    .action(async (flags: { source?: string; jobs?: string; force?: boolean; use?: boolean }) => {
      const jobs = flags.jobs === undefined ? undefined : Number(flags.jobs);
      if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1 || jobs > 256)) {
        throw new SkiffError("ERR_SKIFF_USAGE", `--jobs is not a count: ${JSON.stringify(flags.jobs)}`, { place: "--jobs", hint: "give a whole number from 1" });
      }
      const skiff = await ctx.skiff();
      const started = Date.now();
      const built = await skiff.kernels.build({
        ...(flags.source === undefined ? {} : { source: flags.source }),
        ...(jobs === undefined ? {} : { jobs }),
        force: flags.force === true,
        onPhase: (phase, detail) => {
          if (!ctx.flags.json && phase !== "done") process.stderr.write(`[${Math.round((Date.now() - started) / 1000)}s] ${phase}: ${detail}\n`);
        },
      });
      if (flags.use === true) await skiff.kernels.use(built.id);
      if (ctx.flags.json) process.stdout.write(JSON.stringify(built, null, 2) + "\n");
      else {
        const how = built.cached ? "cached" : `built in ${formatDuration(built.buildSeconds * 1000)} with ${built.jobs} jobs`;
        process.stdout.write(`${built.id}  ${built.version}  ${formatBytes(built.sizeBytes)}  (${how})${flags.use === true ? ", now the default" : ""}\n`);
      }
    });

  kernel
    .command("ls")
    .description("list the guest kernels: Debian's and those skiff built; * marks the default for new VMs")
    .option("-q, --quiet", "only names")
    .option("--json", "print JSON")
    .action(async (flags: { quiet?: boolean }) => {
      const kernels = await (await ctx.skiff()).kernels.list();
      if (ctx.flags.json) process.stdout.write(JSON.stringify(kernels, null, 2) + "\n");
      else if (flags.quiet === true) process.stdout.write(kernels.map((k) => `${k.name}\n`).join(""));
      else {
        const now = Date.now();
        const rows = kernels.map((k) => [
          `${k.default ? "* " : "  "}${k.name}`,
          k.version,
          formatBytes(k.sizeBytes),
          k.built === undefined ? "-" : `${formatAge(now - Date.parse(k.built.builtAt))} (${formatDuration(k.built.buildSeconds * 1000)})`,
          k.usedBy.length === 0 ? "-" : k.usedBy.join(", "),
        ]);
        process.stdout.write(table(["NAME", "VERSION", "SIZE", "BUILT", "USED BY"], rows));
      }
    });

  kernel
    .command("use")
    .description("the kernel new VMs boot unless they name one (--kernel, kernel: in a project): a built kernel's id, skiff, or debian")
    .argument("<kernel>")
    .action(async (ref: string) => {
      const chosen = await (await ctx.skiff()).kernels.use(ref);
      process.stdout.write(ctx.flags.json ? JSON.stringify(chosen, null, 2) + "\n" : `${chosen.name}  ${chosen.version}\n`);
    });

  kernel
    .command("rm")
    .description("remove kernels skiff built; refused while VMs or snapshots boot them")
    .argument("<kernel...>")
    .action(async (refs: string[]) => {
      const kernels = (await ctx.skiff()).kernels;
      for (const ref of refs) process.stdout.write(`${(await kernels.remove(ref)).id}\n`);
    });
}

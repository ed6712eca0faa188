/** cp: copy files and directories between the host and a VM (`NAME:/path` on one side). */
import type { Command } from "commander";
import type { CopyReport } from "../../index.js";
import type { CliContext } from "../context.js";

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The one warning line for what a copy out of `source` did not bring over as it was, or undefined. */
export function copyWarning(report: CopyReport, source: string): string | undefined {
  const { devices, fifos, other } = report.skipped;
  const skipped = [
    ...(devices > 0 ? [plural(devices, "device node", "device nodes")] : []),
    ...(fifos > 0 ? [plural(fifos, "fifo", "fifos")] : []),
    ...(other > 0 ? [plural(other, "entry of a type skiff does not copy", "entries of types skiff does not copy")] : []),
  ];
  const parts = [
    ...(skipped.length > 0 ? [`skipped ${skipped.join(" and ")}`] : []),
    ...(report.setidCleared > 0 ? [`cleared setuid/setgid bits on ${plural(report.setidCleared, "file", "files")}`] : []),
  ];
  if (parts.length === 0) return undefined;
  // -a keeps device nodes, fifos and setuid bits; entries of unknown types no flag brings over.
  const why = devices + fifos + report.setidCleared === 0 ? "" : report.setidCleared === 0 ? " (not copied: use -a to keep them)" : " (use -a to keep them)";
  return `skiff: warning: ${parts.join(", ")} from ${source}${why}`;
}

export function registerCp(program: Command, ctx: CliContext): void {
  program
    .command("cp")
    .description("copy files or directories between the host and a VM: skiff cp SRC NAME:/dst, skiff cp NAME:/src DST (- for a tar on stdin/stdout)")
    .argument("<src>")
    .argument("<dst>")
    .option("-a, --archive", "keep owners, setuid/setgid bits, fifos and device nodes (as docker cp -a; out of a VM, other owners and devices need root)")
    .addHelpText(
      "after",
      `
Out of a VM, what the guest sends is untrusted: nothing is written outside
DST and no symlink is followed. Without -a, files belong to you, setuid and
setgid bits are cleared, and device nodes and fifos are skipped (a warning
says how many). With -a, owners and modes are kept and fifos and device
nodes made (as root) — still only beneath DST.

As with docker cp, - stands for a tar stream: \`skiff cp NAME:/path -\`
writes a tar of the path (under its own name) to stdout, as the guest made
it; \`skiff cp - NAME:/dir\` unpacks a tar from stdin into an existing
directory of the VM (owned by root there unless -a).`,
    )
    .action(async (srcArg: string, dstArg: string, flags: { archive?: boolean }) => {
      const skiff = await ctx.client();
      const report = await skiff.cp(srcArg, dstArg, { archive: flags.archive === true, input: process.stdin, output: process.stdout });
      const warning = report === undefined ? undefined : copyWarning(report, srcArg);
      if (warning !== undefined && !ctx.flags.json) process.stderr.write(`${warning}\n`);
    });
}

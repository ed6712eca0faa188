/** cp: copy files and directories between the host and a VM (`NAME:/path` on one side). */
import type { Command } from "commander";
import { SkiffError } from "../../errors.js";
import type { CopyReport } from "../../index.js";
import type { CliContext } from "../context.js";

interface Endpoint {
  vm?: string;
  path: string;
}

/** `name:/path` is a VM path; anything else (including ./a:b, /abs) is a host path, as with docker cp. */
export function parseEndpoint(arg: string): Endpoint {
  const m = arg.match(/^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)$/);
  if (m === null || arg.startsWith("/") || arg.startsWith(".")) return { path: arg };
  const path = m[2] ?? "";
  if (path === "") throw new SkiffError("ERR_SKIFF_BAD_PATH", `no path after the VM name in ${arg}`, { place: arg, hint: "write NAME:/path" });
  return { vm: m[1] ?? "", path };
}

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
      const src = parseEndpoint(srcArg);
      const dst = parseEndpoint(dstArg);
      if ((src.vm === undefined) === (dst.vm === undefined)) {
        throw new SkiffError("ERR_SKIFF_USAGE", "exactly one side of cp must be a VM path (NAME:/path)", {
          place: `${srcArg} ${dstArg}`,
          hint: "e.g. skiff cp ./file web:/tmp/ or skiff cp web:/etc/hostname .",
        });
      }
      const vm = (src.vm ?? dst.vm) as string;
      const guestPath = src.vm !== undefined ? src.path : dst.path;
      if (!guestPath.startsWith("/")) {
        throw new SkiffError("ERR_SKIFF_BAD_PATH", `guest paths must be absolute: ${guestPath}`, { place: src.vm !== undefined ? srcArg : dstArg });
      }
      const opts = { archive: flags.archive === true };
      const conn = await ctx.skiff().connect(vm);
      try {
        if (dstArg === "-") await conn.copyOutTar(guestPath, process.stdout);
        else if (srcArg === "-") await conn.copyInTar(process.stdin, guestPath, opts);
        else if (src.vm !== undefined) {
          const warning = copyWarning(await conn.copyFrom(src.path, dst.path, opts), srcArg);
          if (warning !== undefined && !ctx.flags.json) process.stderr.write(`${warning}\n`);
        } else {
          await conn.copyTo(src.path, dst.path, opts);
        }
      } finally {
        await conn.close();
      }
    });
}

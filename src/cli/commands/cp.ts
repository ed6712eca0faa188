/** cp: copy files and directories between the host and a VM (`NAME:/path` on one side). */
import type { Command } from "commander";
import { SkiffError } from "../../errors.js";
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

export function registerCp(program: Command, ctx: CliContext): void {
  program
    .command("cp")
    .description("copy files or directories between the host and a VM: skiff cp SRC NAME:/dst, skiff cp NAME:/src DST")
    .argument("<src>")
    .argument("<dst>")
    .action(async (srcArg: string, dstArg: string) => {
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
      const conn = await ctx.skiff().connect(vm);
      try {
        if (src.vm !== undefined) await conn.copyFrom(src.path, dst.path);
        else await conn.copyTo(src.path, dst.path);
      } finally {
        await conn.close();
      }
    });
}

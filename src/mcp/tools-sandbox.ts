/**
 * Sandboxes, E2B's way: sandbox_create (a VM booted and ready),
 * sandbox_files_read / sandbox_files_write, sandbox_kill (removed), and
 * skiff's memory snapshots (vm_snapshot, vm_fork); with Pontoon's vm_cp
 * (a host file into a VM).
 *
 * Files are read and written by skiff's busybox as the caller's user, so
 * deny_root holds for them as for commands. vm_cp reads host files under
 * the server's directory only (the project's, or where `skiff mcp` was
 * started), resolved through symlinks: an agent must not read the host.
 * New VMs (sandbox_create, vm_fork) must not take a name the policy has a
 * rule for (policy.ts, checkNewVmName).
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { readFile, realpath, stat } from "node:fs/promises";
import { sep } from "node:path";
import { z } from "zod";
import { SkiffError } from "../pure.js";
import { addTool, checkGlobal, ok, refused, targetVm, type McpContext, type TargetVm } from "./context.js";
import { asCaller, outputLimit, runBusybox } from "./exec.js";
import { checkNewVmName } from "./policy.js";
import { vmSummary } from "./tools-vm.js";

const vm = z.string().min(1).describe("the VM: its name, one of its IP addresses, or its hostname");
const user = z.string().optional().describe("user to read or write as (default root, which deny_root refuses)");
const guestPath = z.string().regex(/^\/[^\0]*$/, "an absolute path without NUL").describe("absolute path in the guest");
const encoding = z.enum(["utf8", "base64"]).default("utf8");
/** The most vm_cp and sandbox_files_write take in one call. */
const maxWrite = 16 * 1024 * 1024;

const writeScript = 'cat > "$1"';

async function writeFileAs(ctx: McpContext, t: TargetVm, path: string, data: Buffer, who: string | undefined): Promise<void> {
  if (data.length > maxWrite) throw new SkiffError("ERR_SKIFF_USAGE", `${data.length} bytes is more than one call writes (${maxWrite})`, { place: "content", hint: "split the file" });
  const r = await runBusybox(await asCaller(ctx, t, who), ["sh", "-c", writeScript, "skiff-write", path], who, { input: data, timeoutMs: 60_000 });
  if (r.code !== 0) throw new SkiffError("ERR_SKIFF_COPY_FAILED", `cannot write ${path} in ${t.vm.name}: ${r.stderr.trim()}`, { place: "path" });
}

export function registerSandboxTools(server: McpServer, ctx: McpContext): void {
  addTool(
    server,
    ctx,
    "sandbox_create",
    { description: "Create and boot a sandbox VM; it is ready for commands when this returns.", input: z.object({ name: z.string().optional(), image: z.string().default("base"), memory: z.union([z.string(), z.number()]).optional().describe("256m, 1g; a number is MiB"), cpus: z.number().int().min(1).max(64).optional() }).strict() },
    async (a) => {
      checkGlobal(ctx, "sandbox_create");
      if (a.name !== undefined) {
        const r = checkNewVmName(ctx.policy, a.name, ctx.policy.defaults);
        if (r !== undefined) throw refused(r);
      }
      const made = await ctx.skiff.create({ image: a.image, ...(a.name === undefined ? {} : { name: a.name }), ...(a.memory === undefined ? {} : { memory: a.memory }), ...(a.cpus === undefined ? {} : { cpus: a.cpus }) });
      try {
        // A name skiff picked may still be one the policy has a rule for.
        const r = checkNewVmName(ctx.policy, made.name, ctx.policy.defaults);
        if (r !== undefined) throw refused(r);
        const info = await ctx.skiff.start(made.name);
        return ok(vmSummary(info), `sandbox ${info.name} is ${info.state}`);
      } catch (err) {
        await ctx.skiff.remove(made.name, { force: true }).catch(() => undefined);
        throw err;
      }
    },
  );

  addTool(server, ctx, "sandbox_files_read", { description: "Read a file of a VM.", input: z.object({ vm, path: guestPath, encoding, user }).strict(), readOnly: true }, async (a) => {
    const t = await targetVm(ctx, "sandbox_files_read", a.vm);
    const r = await runBusybox(await asCaller(ctx, t, a.user), a.encoding === "base64" ? ["base64", "-w", "0", a.path] : ["cat", a.path], a.user, { timeoutMs: 60_000 });
    if (r.code !== 0) throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot read ${a.path} in ${t.vm.name}: ${r.stderr.trim()}`, { place: "path" });
    const content = r.stdout.slice(0, a.encoding === "base64" ? (outputLimit * 4) / 3 : outputLimit);
    return ok({ vm: t.vm.name, path: a.path, encoding: a.encoding, content, truncated: content.length < r.stdout.length }, content);
  });

  addTool(server, ctx, "sandbox_files_write", { description: "Write a file in a VM (made or replaced).", input: z.object({ vm, path: guestPath, content: z.string(), encoding, user }).strict() }, async (a) => {
    const t = await targetVm(ctx, "sandbox_files_write", a.vm);
    const data = Buffer.from(a.content, a.encoding === "base64" ? "base64" : "utf8");
    await writeFileAs(ctx, t, a.path, data, a.user);
    return ok({ vm: t.vm.name, path: a.path, bytes: data.length }, `wrote ${data.length} bytes to ${t.vm.name}:${a.path}`);
  });

  addTool(server, ctx, "vm_cp", { description: "Copy a host file (under the server's directory) into a VM.", input: z.object({ vm, src: z.string().min(1).describe("host file, relative to the server's directory"), dst: guestPath, user }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_cp", a.vm);
    const root = await realpath(ctx.root);
    if (root === "/") throw refused({ reason: "the server's directory is /, and vm_cp would read the whole host", hint: "start skiff mcp in (or -f a project in) the directory whose files agents may copy" });
    const src = await realpath(a.src.startsWith("/") ? a.src : `${root}/${a.src}`).catch(() => {
      throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `no host file ${a.src}`, { place: "src" });
    });
    if (!src.startsWith(root + sep)) throw refused({ reason: `${a.src} is outside the server's directory ${root}`, hint: "vm_cp copies files under the directory skiff mcp serves" });
    if (!(await stat(src)).isFile()) throw new SkiffError("ERR_SKIFF_BAD_PATH", `${a.src} is not a regular file`, { place: "src" });
    const data = await readFile(src);
    await writeFileAs(ctx, t, a.dst, data, a.user);
    return ok({ vm: t.vm.name, src, dst: a.dst, bytes: data.length }, `copied ${src} to ${t.vm.name}:${a.dst} (${data.length} bytes)`);
  });

  addTool(server, ctx, "sandbox_kill", { description: "Remove a VM (stopped at once, its disk deleted).", input: z.object({ vm }).strict() }, async (a) => {
    const t = await targetVm(ctx, "sandbox_kill", a.vm);
    await ctx.skiff.remove(t.vm.name, { force: true });
    return ok({ vm: t.vm.name, removed: true }, `removed ${t.vm.name}`);
  });

  addTool(server, ctx, "vm_snapshot", { description: "Take a memory snapshot of a running VM (it runs on).", input: z.object({ vm, name: z.string().optional() }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_snapshot", a.vm);
    const snap = await ctx.skiff.snapshot(t.vm.name, a.name === undefined ? {} : { name: a.name });
    return ok({ vm: t.vm.name, snapshot: { ...snap } }, `snapshot ${snap.name ?? snap.id} of ${t.vm.name}`);
  });

  addTool(server, ctx, "vm_fork", { description: "Clone a running VM from a snapshot of its memory: the clones run where it was.", input: z.object({ vm, count: z.number().int().min(1).max(16).default(1), prefix: z.string().optional() }).strict() }, async (a) => {
    const t = await targetVm(ctx, "vm_fork", a.vm);
    const prefix = a.prefix ?? `${t.vm.name}-fork`;
    for (let i = 1; i <= a.count; i++) {
      const r = checkNewVmName(ctx.policy, `${prefix}-${i}`, t.rule);
      if (r !== undefined) throw refused(r);
    }
    const clones = await ctx.skiff.fork(t.vm.name, { count: a.count, prefix });
    return ok({ vm: t.vm.name, clones: clones.map(vmSummary) }, `forked ${t.vm.name}: ${clones.map((c) => c.name).join(", ")}`);
  });
}

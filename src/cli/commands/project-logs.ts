/**
 * The project's console logs, each line prefixed with its VM's name (as
 * compose does), optionally followed until the VMs stop or the signal fires.
 */
import { existsSync } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { Project } from "../../project/project.js";

export interface FollowOptions {
  follow: boolean;
  signal?: AbortSignal;
  /** Provision logs instead of console logs. */
  provision?: boolean;
  /** Only the last N lines of each VM's log before following. */
  tail?: number;
}

export async function followLogs(project: Project, services: readonly string[], opts: FollowOptions): Promise<void> {
  const vms = await project.vms(services);
  const width = Math.max(0, ...vms.map((v) => v.name.length));
  const files = vms.map((vm) => ({
    prefix: `${vm.name.padEnd(width)} | `,
    path: opts.provision === true ? vm.paths.provisionLog : vm.paths.consoleLog,
    offset: 0,
    partial: "",
  }));
  for (const f of files) {
    const text = existsSync(f.path) ? await readFile(f.path, "utf8") : "";
    f.offset = Buffer.byteLength(text);
    let lines = text.split("\n");
    f.partial = lines.pop() ?? "";
    if (opts.tail !== undefined) lines = lines.slice(Math.max(0, lines.length - opts.tail));
    for (const l of lines) process.stdout.write(f.prefix + l + "\n");
  }
  if (!opts.follow) {
    for (const f of files) if (f.partial !== "") process.stdout.write(f.prefix + f.partial + "\n");
    return;
  }
  while (opts.signal?.aborted !== true) {
    let grew = false;
    for (const f of files) {
      const size = existsSync(f.path) ? (await stat(f.path)).size : 0;
      if (size < f.offset) f.offset = 0; // replaced: the VM was made again
      if (size <= f.offset) continue;
      grew = true;
      const fh = await open(f.path, "r");
      const buf = Buffer.alloc(size - f.offset);
      await fh.read(buf, 0, buf.length, f.offset);
      await fh.close();
      f.offset = size;
      const lines = (f.partial + buf.toString("utf8")).split("\n");
      f.partial = lines.pop() ?? "";
      for (const l of lines) process.stdout.write(f.prefix + l + "\n");
    }
    if (!grew) {
      // Following ends when no VM of the project runs any more.
      const running = (await project.ps()).length;
      if (running === 0 && opts.signal === undefined) return;
      await sleep(250, undefined, { signal: opts.signal }).catch(() => undefined);
    }
  }
}

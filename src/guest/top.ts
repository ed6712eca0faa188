/**
 * `skiff top` / `skiff compose top`: the processes running in a guest, by
 * skiff's static busybox `ps` (every image has it, whatever the image
 * ships; a cloud image by its own procps), without the guest kernel's
 * threads, as `docker top` leaves them out.
 */
import { SkiffError } from "../errors.js";
import type { RunOptions, RunOutput } from "./agent.js";

/** The columns both ps'es know (busybox's `ps -o` refuses procps-only fields such as `time` in its build). */
const columns = "pid,ppid,user,stat,vsz,rss,args";

/** What top needs from a connection. */
export interface TopConnection {
  readonly sshUser: string | undefined;
  run(argv: string[], opts?: RunOptions): Promise<RunOutput>;
}

/** The guest's process table as ps prints it (a header, then one line per process). */
export async function guestProcesses(conn: TopConnection, vmName: string): Promise<string> {
  const argv = conn.sshUser === undefined ? ["/dev/.skiff/bin/busybox", "ps", "-o", columns] : ["ps", "-eo", columns];
  const r = await conn.run(argv, { timeoutMs: 30_000 });
  if (r.code !== 0) {
    throw new SkiffError("ERR_SKIFF_GUEST_COMMAND", `ps failed in VM ${vmName} (exit ${r.code})${r.stderr.trim() === "" ? "" : `: ${r.stderr.trim().slice(0, 500)}`}`, {
      place: vmName,
      hint: `see what the guest says with \`skiff exec ${vmName} ps\``,
    });
  }
  return withoutKernelThreads(r.stdout);
}

/** Drop kernel threads: their args are a bracketed name ([kthreadd], [kworker/0:1]) and they use no memory. */
export function withoutKernelThreads(table: string): string {
  const kernelThread = /^\s*\d+\s+\d+\s+\S+\s+\S+\s+0\s+0\s+\[[^\]]*\]\s*$/;
  return table
    .split("\n")
    .filter((line, i) => i === 0 || !kernelThread.test(line))
    .join("\n");
}

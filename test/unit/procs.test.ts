/** The host's process table as ProcTable reads it from /proc (src/process/procs.ts). */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ProcTable } from "../../src/process/procs.js";

describe("ProcTable of the host", () => {
  const table = new ProcTable();

  it("reads this process: its parent, real uid and start time as /proc has them", () => {
    const me = table.get(process.pid)!;
    const stat = readFileSync(`/proc/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    expect(me).toEqual({ pid: process.pid, ppid: process.ppid, uid: process.getuid!(), startTime: Number(fields[19]), state: "R" });
    expect(table.argv(process.pid)).toEqual(readFileSync(`/proc/${process.pid}/cmdline`, "utf8").split("\0").slice(0, -1));
  });

  it("tells kernel threads by their flags, as root's, with no command line read", () => {
    // kthreadd (pid 2) and its children are the kernel's, in every pid namespace that shows them.
    const kernel = table.procs.filter((p) => p.kernel === true);
    if (table.get(2) !== undefined) expect(kernel.map((p) => p.pid)).toContain(2);
    for (const p of kernel) {
      expect(p.uid).toBe(0);
      expect(p.pid === 2 || p.ppid === 2).toBe(true);
      expect(table.argv(p.pid)).toEqual([]);
    }
    expect(table.get(1)?.kernel).toBeUndefined();
  });
});

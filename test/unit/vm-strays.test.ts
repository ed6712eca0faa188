/** A QEMU is a stray only while its VM's directory is gone: a VM committed after the scan is not one. */
import { describe, expect, it } from "vitest";
import { ProcTable } from "../../src/process/procs.js";
import { strays } from "../../src/engine/vm-process.js";

const vms = "/h/vms";
const qemu = (pid: number, id: string): [number, string[]] => [pid, ["/usr/bin/qemu-system-x86_64", "-pidfile", `${vms}/${id}/run/qemu.pid`]];
const table = new ProcTable(
  [1, 2, 3].map((pid) => ({ pid, ppid: 1, uid: 1600000000 + pid, startTime: 100 + pid, state: "S" })),
  new Map([qemu(1, "aaaaaaaaaaaa"), qemu(2, "bbbbbbbbbbbb"), qemu(3, "cccccccccccc")]),
);

describe("strays", () => {
  it("skips the known VMs and those whose directory exists now (committed, or still .tmp-, after the scan)", () => {
    const now = new Set([`${vms}/bbbbbbbbbbbb`, `${vms}/.tmp-cccccccccccc`]);
    expect(strays(vms, new Set(["aaaaaaaaaaaa"]), table, (p) => now.has(p))).toEqual([]);
  });

  it("finds a QEMU whose VM is neither known nor on disk", () => {
    expect(strays(vms, new Set(["aaaaaaaaaaaa"]), table, () => false).map((s) => s.vmId)).toEqual(["bbbbbbbbbbbb", "cccccccccccc"]);
  });
});

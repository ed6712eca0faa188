/**
 * Which process is a VM's QEMU, from a process table: never its restart
 * supervisor, whose command line carries QEMU's (pidfile and all) while it
 * waits out its backoff between two QEMUs.
 */
import { describe, expect, it } from "vitest";
import { qemuOf, supervisorOf } from "../../src/engine/vm-process.js";
import { ProcTable, type ProcInfo } from "../../src/process/procs.js";
import { vmPaths } from "../../src/store/vmdir.js";

const own = process.getuid?.() ?? 0;
const paths = vmPaths("/home/s", "0123456789ab");
const qemuArgv = ["/usr/bin/qemu-system-x86_64", "-M", "microvm", "-pidfile", paths.pidfile];
const jailerArgv = ["/opt/skiff/dist/jail/skiff-jail", "--supervise", "on-failure", "--status", paths.supervisorStatus, "--", ...qemuArgv];

function proc(pid: number, ppid: number, uid: number, state = "S"): ProcInfo {
  return { pid, ppid, uid, state, startTime: pid * 10 };
}

describe("qemuOf, without a jail uid to go by", () => {
  const vm = { paths, config: {} };

  it("is the process naming the VM's pidfile", () => {
    const table = new ProcTable([proc(10, 1, own), proc(11, 10, own)], new Map([[10, jailerArgv], [11, qemuArgv]]));
    expect(qemuOf(vm, table)).toEqual({ pid: 11, startTime: 110 });
    expect(supervisorOf(vm, table)).toEqual({ pid: 10, startTime: 100 });
  });

  it("is none while the supervisor waits to start QEMU again (its argv names the pidfile too)", () => {
    const table = new ProcTable([proc(10, 1, own), proc(11, 10, own, "Z")], new Map([[10, jailerArgv], [11, qemuArgv]]));
    expect(qemuOf(vm, table)).toBeUndefined();
    expect(supervisorOf(vm, table)).toEqual({ pid: 10, startTime: 100 });
  });
});

/**
 * What a resumed VM that never took its identity left behind, said in the
 * error (the VM is stopped, and a restored one removed with its logs): QEMU
 * gone with its log's last line, a guest kernel crash on the console since
 * the resume and not before it, the guest's words made printable and cut.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { currentProcess, processStartTime, type ProcessIdentity } from "../../src/process/pid.js";
import { resumeFailureFacts } from "../../src/snapshot/resume.js";

let dir: string;
let paths: { qemuStderr: string; consoleLog: string };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-resume-failure-"));
  paths = { qemuStderr: join(dir, "qemu.stderr"), consoleLog: join(dir, "console.log") };
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A process that has ended: its pid with a start time no live process has. */
function ended(): ProcessIdentity {
  const child = spawnSync("true");
  expect(child.status).toBe(0);
  expect(processStartTime(child.pid!)).toBeUndefined();
  return { pid: child.pid!, startTime: 1 };
}

const captured = "[    1.0] Run /init as init process\nskiff: ready\n[   2.5] BUG: unable to handle page fault in the captured guest\n";

it("says nothing when QEMU runs and the console shows no crash since the resume", async () => {
  await writeFile(paths.consoleLog, captured + "[  30.1] virtio_net: link up\n");
  expect(await resumeFailureFacts(paths, currentProcess(), captured.length)).toBeUndefined();
});

it("names a kernel crash after the resume, escaped and cut, and not one from before it", async () => {
  const crash = `[  31.2] general protection fault, probably for non-canonical address 0xdead\u001b[31m: 0000 ${"x".repeat(400)}\n`;
  await writeFile(paths.consoleLog, captured + "[  31.0] random: crng reseeded\n" + crash + "[  31.3] RIP: timerqueue_add+0x1f\n");
  const facts = await resumeFailureFacts(paths, currentProcess(), captured.length);
  expect(facts).toMatch(/^the guest's kernel crashed: general protection fault, probably for non-canonical address 0xdead\?\[31m: 0000 x+$/);
  expect(facts!.length).toBe("the guest's kernel crashed: ".length + 200);
});

it("says QEMU had ended, with the last line of its log", async () => {
  await writeFile(paths.qemuStderr, "qemu-system-x86_64: warning: something early\nqemu: fatal: lost the plot\n\n");
  await writeFile(paths.consoleLog, captured);
  expect(await resumeFailureFacts(paths, ended(), captured.length)).toBe("QEMU had ended (its log ends: qemu: fatal: lost the plot)");
});

it("gives both when QEMU ended after the guest crashed, and copes with logs that are not there", async () => {
  await writeFile(paths.consoleLog, captured + "Kernel panic - not syncing: Fatal exception\n");
  expect(await resumeFailureFacts(paths, ended(), captured.length)).toBe("QEMU had ended; the guest's kernel crashed: Kernel panic - not syncing: Fatal exception");
  await rm(paths.consoleLog);
  expect(await resumeFailureFacts(paths, currentProcess(), 0)).toBeUndefined();
});

it("reads a console log rotated since the resume (shorter than where it began) whole", async () => {
  await writeFile(paths.consoleLog, "[  40.0] Oops: 0002 [#1] PREEMPT SMP\n");
  expect(await resumeFailureFacts(paths, currentProcess(), 8 * 1024 * 1024)).toBe("the guest's kernel crashed: Oops: 0002 [#1] PREEMPT SMP");
});

/** The example's tour (examples/sdk/sandbox.mjs) on a sandbox and what it must print: shared by the in-process and the remote SDK tests. */
import { expect } from "vitest";
import type { Sandbox } from "../../dist/sdk/index.js";
// @ts-expect-error: a JavaScript example without types
import { tour } from "../../examples/sdk/sandbox.mjs";

export async function expectTour(sb: Sandbox, metadata: Record<string, string>): Promise<void> {
  const lines: string[] = [];
  await (tour as (sb: Sandbox, log: (line: string) => void) => Promise<void>)(sb, (line) => lines.push(line));
  const out = lines.join("\n");
  // stdout and stderr are two streams: their order between them is the guest's scheduling.
  expect(lines).toEqual(expect.arrayContaining(["  [stdout] hello from Linux", "  [stderr] to stderr", "exit 0"]));
  for (const want of [
    "hi from /tmp as user",
    'CommandExitError: exit 3, stderr "oops\\n"',
    'read: "written by the SDK\\n"',
    "bytes: [0,1,2,255]",
    "  file   4 /work/notes/a.bin\n  file   3 /work/notes/b.txt\n  file  19 /work/notes/hello.txt",
    "exists b.txt: false, /work/empty: true",
    "read /nope: ERR_SKIFF_FILE_NOT_FOUND",
    "  [bg] got: one\n  [bg] got: two\n  [bg] stdin closed\nbackground exit 0, 3 lines",
    "sleeper: exit 137 (killed by SIGKILL)",
    "pty saw size 40 120 and 42",
    `metadata ${JSON.stringify(metadata)}`,
  ]) {
    expect(out).toContain(want);
  }
}

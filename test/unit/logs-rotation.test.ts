/**
 * A VM's console log as `skiff logs` reads it, across the rotation the
 * jailer's relay does at its limit (console.log -> console.log.1, a new
 * console.log): the history spans both files, and a follower goes on from
 * where it was in the rotated file into the new one, losing and repeating
 * nothing.
 */
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { consoleLogOf, logStream } from "../../src/engine/logs.js";
import type { RunState } from "../../src/engine/status.js";

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skiff-logs-"));
  path = join(dir, "console.log");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function collect(stream: AsyncIterable<Buffer | string>, into: string[]): Promise<void> {
  for await (const chunk of stream) into.push(chunk.toString());
}

it("shows the rotated file's lines before the current file's, and the last N lines across both", async () => {
  writeFileSync(`${path}.1`, "one\ntwo\n");
  writeFileSync(path, "three\nfour\n");
  const all: string[] = [];
  await collect(logStream({ path, state: () => Promise.resolve(undefined) }), all);
  expect(all.join("")).toBe("one\ntwo\nthree\nfour\n");
  const last: string[] = [];
  await collect(logStream({ path, lines: 3, state: () => Promise.resolve(undefined) }), last);
  expect(last.join("")).toBe("two\nthree\nfour\n");
});

it("follows a log through its rotation without losing or repeating a byte", async () => {
  writeFileSync(path, "before\n");
  let state: RunState | undefined = "running";
  const got: string[] = [];
  const done = collect(logStream({ path, follow: true, pollMs: 10, state: () => Promise.resolve(state) }), got);
  const tick = () => new Promise((r) => setTimeout(r, 40));
  await tick();
  appendFileSync(path, "a1\n");
  await tick();
  // Written, then rotated before the follower looked again: the rest of the old file must still come.
  appendFileSync(path, "a2\n");
  renameSync(path, `${path}.1`);
  writeFileSync(path, "b1\n");
  await tick();
  appendFileSync(path, "b2\n");
  await tick();
  state = "stopped";
  await done;
  expect(got.join("")).toBe("before\na1\na2\nb1\nb2\n");
});

it("reads run/console.log of a VM whose QEMU an older skiff started, until the relay's log exists", () => {
  const runDir = join(dir, "run");
  const paths = { consoleLog: path, runDir };
  expect(consoleLogOf(paths)).toBe(path);
  mkdirSync(runDir);
  writeFileSync(join(runDir, "console.log"), "old\n");
  expect(consoleLogOf(paths)).toBe(join(runDir, "console.log"));
  writeFileSync(path, "");
  expect(consoleLogOf(paths)).toBe(path);
});

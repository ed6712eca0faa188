/**
 * A step's output is all in its log before the log's next line, and in a
 * failed layer step's error tail. A command's last output and its exit come
 * together (skiff's guest session hands the chunks over and settles at the
 * exit), while the logs write to files: the steps here write their output
 * in one go and end at once, as such a command does, through the real
 * provisioner and layer code with a fake guest.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import type { AgentConnection } from "../../src/index.js";
import { BuildLog } from "../../src/layer/build-log.js";
import { applyLayers, type BuildVm } from "../../src/layer/build.js";
import type { LayerSpec } from "../../src/layer/schema.js";
import { runProvisioners } from "../../src/project/provision.js";

const work = mkdtempSync(join(tmpdir(), "skiff-step-order-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Ten numbered lines, each a chunk of its own, written at once. */
function writeLines(out: Writable): void {
  for (let i = 1; i <= 10; i++) out.write(`line ${i}\n`);
}

describe("a step's last output", () => {
  it("is in the provision log before the step's exit line", async () => {
    const logPath = join(work, "provision.log");
    const conn = {
      exec: async (_req: unknown, io: { stdout: Writable }) => {
        writeLines(io.stdout);
        return { code: 0 };
      },
    } as unknown as AgentConnection;
    const seen: string[] = [];
    await runProvisioners(conn, [{ kind: "shell", inline: "seq 10", place: "skiff.yml:3" }], { vm: "web", logPath, onOutput: (_s, text) => seen.push(text) });
    const log = readFileSync(logPath, "utf8");
    const lines = log.split("\n");
    expect(lines.indexOf("line 10")).toBeGreaterThan(0);
    expect(lines.indexOf("line 10")).toBeLessThan(lines.indexOf("==> step 1 exited with 0"));
    expect(log).toContain(Array.from({ length: 10 }, (_, i) => `line ${i + 1}\n`).join(""));
    expect(seen.join("")).toBe(Array.from({ length: 10 }, (_, i) => `line ${i + 1}\n`).join(""));
  });

  it("fails the step with the log's own error when the provision log cannot be written, instead of an 'error' nobody hears", async () => {
    const logPath = join(work, "gone.log");
    const conn = {
      exec: async (_req: unknown, io: { stdout: Writable }) => {
        // The log is a directory while the output comes: appending it fails (as on a full disk); the lines after the step could be written.
        rmSync(logPath);
        mkdirSync(logPath);
        writeLines(io.stdout);
        await new Promise((resolve) => setTimeout(resolve, 100));
        rmSync(logPath, { recursive: true });
        writeFileSync(logPath, "");
        return { code: 0 };
      },
    } as unknown as AgentConnection;
    await expect(runProvisioners(conn, [{ kind: "shell", inline: "seq 10", place: "skiff.yml:3" }], { vm: "web", logPath })).rejects.toMatchObject({ code: "EISDIR" });
  });

  it("is in a failed layer step's error and in the build log before the next line", async () => {
    const log = new BuildLog(join(work, "build.log"));
    const vm: BuildVm = {
      sh: async (_command, out) => {
        writeLines(out);
        return 3;
      },
      copyTo: async () => undefined,
    };
    const layer: LayerSpec = { name: "broken", dir: work, file: join(work, "layer.yml"), packages: [], configs: [], run: ["seq 10; exit 3"], binaries: [] };
    const failed = await applyLayers(vm, [layer], { log }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failed).toMatchObject({ code: "ERR_SKIFF_BUILD_FAILED", details: { exitCode: 3 } });
    expect((failed as Error).message).toMatch(/line 9\nline 10$/);
    log.note("after the step");
    await log.close();
    const text = readFileSync(join(work, "build.log"), "utf8");
    expect(text).toMatch(/line 10\n==> [\d.]+ s after the step\n$/);
  });
});

/**
 * `skiff up` after an `up` that failed on a service: the service is started
 * again, not called up to date. Its main command makes it healthy only from
 * its second boot on (a marker file it leaves on its disk the first time),
 * so the healthcheck fails in the first `up` and passes once the second
 * `up` has started it again.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = new Harness();
const dir = mkdtempSync("/tmp/skr-");
const file = join(dir, "skiff.yml");
const project = ["-f", file, "-p", "retry"];

writeFileSync(
  file,
  `version: "1"
services:
  app:
    image: base
    command: ["sh", "-c", "if [ -f /root/booted-once ]; then touch /tmp/ready; else touch /root/booted-once; sync; fi; exec sleep 100000"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      retries: 3
`,
);

afterAll(async () => {
  await h.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function up(): Promise<{ code: number; actions: string[]; output: string }> {
  const r = await h.run(["--json", "up", "-d", "--wait", ...project], { timeoutMs: 300_000 });
  const actions = r.code === 0 ? (JSON.parse(r.stdout) as { vms: { action: string }[] }).vms.map((v) => v.action) : [];
  return { code: r.code, actions, output: r.stdout + r.stderr };
}

describe("up after a failed up", () => {
  it("starts again a service whose healthcheck failed, instead of calling it up to date", async () => {
    const first = await up();
    expect(first.code).toBe(6);
    expect(first.output).toContain("ERR_SKIFF_UNHEALTHY");

    const second = await up();
    expect(second.output).not.toContain("is up to date");
    expect(second).toMatchObject({ code: 0, actions: ["restarted"] });

    const third = await up();
    expect(third).toMatchObject({ code: 0, actions: ["unchanged"] });
  });
});

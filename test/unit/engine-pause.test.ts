import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { guestPaused, pausedLabel, pauseReason } from "../../src/engine/pause.js";

describe("pauseReason", () => {
  it("reads QEMU's runstate and its disks' I/O status", () => {
    expect(pauseReason("running")).toBeUndefined();
    expect(pauseReason("paused")).toBe("user");
    expect(pauseReason("io-error", ["ok", "nospace"])).toBe("disk full");
    expect(pauseReason("io-error", ["failed", "ok"])).toBe("I/O error");
    // A guest stopped on an error whose disk no longer says which: the policy that stops it is ENOSPC's.
    expect(pauseReason("io-error", [])).toBe("disk full");
    expect(pauseReason("guest-panicked")).toBe("guest-panicked");
  });

  it("labels a paused guest as ps shows it", () => {
    expect(pausedLabel("user")).toBe("paused");
    expect(pausedLabel("disk full")).toBe("paused (disk full)");
  });
});

describe("guestPaused", () => {
  it("takes a QEMU whose monitor does not answer in time as running, within its deadline", async () => {
    // QEMU's monitor serves one client at a time: another one connects and hears nothing.
    const dir = await mkdtemp(join(tmpdir(), "skiff-pause-"));
    const qmpSocket = join(dir, "qmp.sock");
    const held: Socket[] = [];
    const server = createServer((s) => held.push(s));
    await new Promise<void>((r) => server.listen(qmpSocket, r));
    try {
      const t0 = Date.now();
      expect(await guestPaused({ name: "vm", paths: { qmpSocket, dir } }, 300)).toBeUndefined();
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Bind mounts and named volumes on real VMs (the built CLI, the `base`
 * image): a host directory written from both sides while the VM runs, a
 * read-only one refused, a named volume's data across stop/start and into
 * another VM after the first is removed, and one volume never attached to
 * two running VMs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "./harness.js";

describe("volumes on real VMs", () => {
  const h = new Harness();
  const host = mkdtempSync(join(tmpdir(), "skiff-bind-"));
  const share = join(host, "share");
  const config = join(host, "config");

  beforeAll(async () => {
    mkdirSync(share);
    mkdirSync(config);
    writeFileSync(join(config, "app.conf"), "answer=42\n");
    await h.ok(["run", "-d", "--name", "a", "-v", `${share}:/share`, "-v", `${config}:/etc/app:ro`, "-v", "data:/var/lib/data", "base"]);
  });
  afterAll(async () => {
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
    rmSync(host, { recursive: true, force: true });
  });

  it("shares a host directory live, both ways, while the VM runs", async () => {
    writeFileSync(join(share, "from-host"), "hello from the host\n");
    expect(await h.ok(["exec", "a", "cat", "/share/from-host"])).toBe("hello from the host\n");
    await h.ok(["exec", "a", "sh", "-c", "echo hello from the guest > /share/from-guest"]);
    expect(readFileSync(join(share, "from-guest"), "utf8")).toBe("hello from the guest\n");
    // Changed on the host after the guest read it: no stale cache.
    writeFileSync(join(share, "from-host"), "changed\n");
    expect(await h.ok(["exec", "a", "cat", "/share/from-host"])).toBe("changed\n");
  });

  it("refuses writes to a :ro mount", async () => {
    expect(await h.ok(["exec", "a", "cat", "/etc/app/app.conf"])).toBe("answer=42\n");
    const r = await h.run(["exec", "a", "sh", "-c", "echo x > /etc/app/new"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Read-only file system/);
    expect(existsSync(join(config, "new"))).toBe(false);
  });

  it("made the named volume on first use and mounts it as ext4", async () => {
    expect(await h.ok(["volume", "ls", "-q"])).toBe("data\n");
    expect(await h.ok(["exec", "a", "sh", "-c", "grep ' /var/lib/data ' /proc/mounts | cut -d' ' -f3"])).toBe("ext4\n");
    await h.ok(["exec", "a", "sh", "-c", "echo kept > /var/lib/data/keep"]);
  });

  it("never attaches one volume to two running VMs", async () => {
    await h.ok(["create", "--name", "b", "-v", "data:/d", "base"]);
    const r = await h.run(["start", "b"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("ERR_SKIFF_VOLUME_IN_USE");
    expect(r.stderr).toContain("running VM a");
    expect(await h.ok(["volume", "ls"])).toMatch(/data\s+1 GiB\s+.*a \(running\), b/);
  });

  it("keeps the volume's data across stop/start, and after the VM is removed, for another VM", async () => {
    await h.ok(["stop", "a"]);
    await h.ok(["start", "a"]);
    expect(await h.ok(["exec", "a", "cat", "/var/lib/data/keep"])).toBe("kept\n");
    await h.ok(["rm", "-f", "a"]);
    await h.ok(["start", "b"]);
    expect(await h.ok(["exec", "b", "cat", "/d/keep"])).toBe("kept\n");
  });

  it("removes a volume only once no VM uses it", async () => {
    const refused = await h.run(["volume", "rm", "data"]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain("running VM b");
    await h.ok(["rm", "-f", "b"]);
    expect(await h.ok(["volume", "rm", "data"])).toBe("data\n");
    const gone = await h.run(["volume", "inspect", "data"]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain("ERR_SKIFF_VOLUME_NOT_FOUND");
  });

  it("refuses a missing bind source before making anything", async () => {
    const r = await h.run(["create", "--name", "c", "-v", join(host, "nope") + ":/x", "base"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("ERR_SKIFF_FILE_NOT_FOUND (--volume)");
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
  });
});

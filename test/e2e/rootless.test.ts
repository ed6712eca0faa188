/**
 * skiff without root: the same CLI run as another user (`nobody`), with a
 * home and cache of its own. QEMU is jailed in a user namespace as that
 * user, bind mounts still land as the user's plain files, and what needs
 * root says so.
 */
import { spawn } from "node:child_process";
import { chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliPath, collect, type CliResult } from "../vm/harness.js";

const user = 65534;
const dir = mkdtempSync(join(tmpdir(), "skiff-rootless-"));
const share = join(dir, "share");
mkdirSync(share);
chownSync(dir, user, user);
chownSync(share, user, user);
const env = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: dir,
  SKIFF_HOME: join(dir, "h"),
  SKIFF_USERNET_RESTRICT: "1",
};

function skiff(args: string[]): Promise<CliResult> {
  return collect(spawn(process.execPath, [cliPath, ...args], { env, uid: user, gid: user, stdio: "pipe" }), { timeoutMs: 300_000 });
}

async function ok(args: string[]): Promise<string> {
  const r = await skiff(args);
  if (r.code !== 0) throw new Error(`skiff ${args.join(" ")} exited ${r.code}\n${r.stderr}`);
  return r.stdout;
}

afterAll(async () => {
  await skiff(["rm", "-f", "nr"]);
  rmSync(dir, { recursive: true, force: true });
});

describe("without root", () => {
  it("boots a jailed VM as the user, in a user namespace of its own", async () => {
    await ok(["run", "-d", "--name", "nr", "-v", `${share}:/share`, "base"]);
    const pid = (JSON.parse(await ok(["inspect", "nr"]))[0] as { pid: number }).pid;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(readlinkSync(`/proc/${pid}/ns/user`)).not.toBe(readlinkSync("/proc/self/ns/user"));
    expect((await ok(["exec", "nr", "echo", "hello"])).trim()).toBe("hello");
  }, 300_000);

  it("keeps bind-mount writes the user's plain files", async () => {
    await ok(["exec", "nr", "sh", "-c", "cp /bin/busybox /share/x && chmod 4755 /share/x"]);
    const st = lstatSync(join(share, "x"));
    expect([st.uid, st.mode & 0o7777]).toEqual([user, 0o600]);
    expect(await ok(["exec", "nr", "ls", "-l", "/share/x"])).toMatch(/^-rwsr-xr-x/);
  });

  it("refuses an egress allow list it could not enforce, and says why", async () => {
    const r = await skiff(["create", "--egress", "allow=192.0.2.2:80", "base"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain("ERR_SKIFF_NEEDS_ROOT (--egress)");
  });
});

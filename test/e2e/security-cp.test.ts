/**
 * `skiff cp` out of a hostile guest, as a user types it. The guest's root
 * makes setuid-root files, device nodes and fifos, and then replaces
 * skiff's busybox in the guest (a bind mount over /dev/.skiff/bin/busybox)
 * so that the tar stream the host receives is whatever it wants: a symlink
 * for a later copy to write through, `..`, absolute names, hard links out,
 * a stream that stops half-way. Nothing may reach outside the destination,
 * and a killed `skiff cp` leaves nothing behind on either side.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTar, type TarItem } from "../unit/fixtures/tar-fixtures.js";
import { collect, Harness } from "../vm/harness.js";

const h = new Harness();
const vm = "cpsec";
let work: string;
let outside: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "skiff-cpsec-"));
  outside = join(work, "outside");
  mkdirSync(outside);
  writeFileSync(join(outside, "victim"), "original\n");
  expect(await h.ok(["run", "-d", "--name", vm, "base"])).toBe(`${vm}\n`);
  // What any guest root can make.
  await h.ok([
    "exec", vm, "sh", "-c",
    "mkdir /loot && echo x > /loot/suid && chmod 4755 /loot/suid && mknod -m 666 /loot/null c 1 3 && mkfifo /loot/pipe && " +
      "echo hi > /loot/owned && chown 1234:2345 /loot/owned && chmod 2750 /loot/owned",
  ]);
});
afterAll(async () => {
  await h.cleanup();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh, empty host directory. */
function freshDir(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  return dir;
}

function outsideUntouched(): void {
  expect(readdirSync(outside)).toEqual(["victim"]);
  expect(readFileSync(join(outside, "victim"), "utf8")).toBe("original\n");
}

describe("a guest's setuid files, device nodes and fifos", () => {
  it("arrive without setuid bits, devices or fifos, owned by the invoking user, and a warning says so", async () => {
    const out = freshDir("plain");
    const r = await h.run(["cp", `${vm}:/loot`, out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`skiff: warning: skipped 1 device node and 1 fifo, cleared setuid/setgid bits on 2 files from ${vm}:/loot (use -a to keep them)\n`);
    expect(readdirSync(join(out, "loot")).sort()).toEqual(["owned", "suid"]);
    for (const [name, mode] of [["suid", 0o755], ["owned", 0o750]] as const) {
      const st = lstatSync(join(out, "loot", name));
      expect(st.mode & 0o7777).toBe(mode);
      expect({ uid: st.uid, gid: st.gid }).toEqual({ uid: process.getuid!(), gid: process.getgid!() });
    }
  });

  it("-a keeps owners, modes, device nodes and fifos", async () => {
    const out = freshDir("archive");
    const r = await h.run(["cp", "-a", `${vm}:/loot`, out]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const at = (name: string) => lstatSync(join(out, "loot", name));
    expect(at("suid").mode & 0o7777).toBe(0o4755);
    expect(at("owned")).toMatchObject({ uid: 1234, gid: 2345 });
    expect(at("owned").mode & 0o7777).toBe(0o2750);
    expect(at("null").isCharacterDevice()).toBe(true);
    expect([Math.floor(at("null").rdev / 256), at("null").rdev % 256]).toEqual([1, 3]);
    expect(at("pipe").isFIFO()).toBe(true);
  });

  it("-a into the VM keeps the host file's owner", async () => {
    const file = join(work, "mine");
    writeFileSync(file, "mine\n");
    chownSync(file, 4321, 8765);
    chmodSync(file, 0o640);
    await h.ok(["cp", "-a", file, `${vm}:/tmp/`]);
    await h.ok(["cp", file, `${vm}:/tmp/as-root`]);
    expect(await h.ok(["exec", vm, "stat", "-c", "%u:%g %a", "/tmp/mine", "/tmp/as-root"])).toBe("4321:8765 640\n0:0 640\n");
  });
});

describe("a guest that replaces the tar it sends", () => {
  // Stands in for skiff's busybox: `tar -c` sends /root/evil.tar (and then hangs with /root/hang-c),
  // `tar -x` hangs with /root/hang-x; everything else is the real busybox.
  const wrapper = `#!/bin/busybox sh
case "$1 $2" in
  "tar -c") if [ -f /root/evil.tar ]; then /bin/busybox cat /root/evil.tar; [ -f /root/hang-c ] && exec /bin/busybox sleep 3600; exit 0; fi ;;
  "tar -x") [ -f /root/hang-x ] && exec /bin/busybox sleep 3600 ;;
esac
exec /bin/busybox "$@"
`;

  beforeAll(async () => {
    await h.ok(["exec", "-i", vm, "sh", "-c", "cat > /root/evil-bb && chmod 755 /root/evil-bb && mount --bind /root/evil-bb /dev/.skiff/bin/busybox && mkdir /x"], {
      input: wrapper,
    });
  });

  /** Make the guest's next `tar -c` send `items`. */
  async function guestSends(items: TarItem[] | Buffer): Promise<void> {
    const file = join(work, "evil.tar");
    writeFileSync(file, Buffer.isBuffer(items) ? items : await makeTar(items));
    await h.ok(["cp", file, `${vm}:/root/evil.tar`]);
  }

  it("cannot make a later copy write through a symlink an earlier copy landed", async () => {
    const dest = freshDir("two-step");
    await guestSends([
      { name: "./", type: "directory" },
      { name: "d/", type: "directory" },
      { name: "d/link", type: "symlink", linkname: outside },
    ]);
    await h.ok(["cp", `${vm}:/x`, dest]);
    expect(readlinkSync(join(dest, "x", "d", "link"))).toBe(outside);

    await guestSends([{ name: "d/link/victim", body: "pwned\n" }]);
    const r = await h.run(["cp", `${vm}:/x`, dest]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("ERR_SKIFF_COPY_UNSAFE");
    expect(r.stderr).toContain('"d/link/victim"');
    outsideUntouched();
  });

  it.each([
    ["a .. component", () => [{ name: "../escaped", body: "pwned\n" }]],
    ["an absolute name", () => [{ name: join(outside, "victim"), body: "pwned\n" }]],
    ["a hard link out", () => [{ name: "h", type: "link", linkname: join(outside, "victim") }]],
  ] as [string, () => TarItem[]][])("cannot write outside the destination with %s", async (_what, items) => {
    const dest = freshDir(`escape-${readdirSync(work).length}`);
    await guestSends(items());
    const r = await h.run(["cp", `${vm}:/x`, dest]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("ERR_SKIFF_COPY_UNSAFE");
    expect(readdirSync(dest)).toEqual(["x"]);
    expect(readdirSync(join(dest, "x"))).toEqual([]);
    outsideUntouched();
  });

  it("a killed skiff cp leaves no staging directory on the host once the next skiff command ran", async () => {
    const dest = freshDir("killed");
    // A file's header and part of its data, then nothing: the copy is in the middle of it when killed.
    const whole = await makeTar([{ name: "hostname", body: Buffer.alloc(1024 * 1024, 1) }]);
    await guestSends(whole.subarray(0, 512 + 64 * 1024));
    await h.ok(["exec", vm, "touch", "/root/hang-c"]);
    const cp = h.spawn(["cp", `${vm}:/etc/hostname`, join(dest, "hn")]);
    const ended = collect(cp);
    const staging = await waitFor(
      () => readdirSync(dest).find((name) => name.startsWith(".skiff-cp-") && readdirSync(join(dest, name)).includes("hostname")),
      "a staging directory with half of the file",
    );
    cp.kill("SIGKILL");
    await ended;
    expect(readdirSync(dest)).toEqual([staging]);
    expect(readdirSync(join(h.home, "cp-staging"))).toHaveLength(1);

    await h.ok(["ps"]);
    expect(readdirSync(dest)).toEqual([]);
    expect(readdirSync(join(h.home, "cp-staging"))).toEqual([]);
    await h.ok(["exec", vm, "rm", "/root/hang-c", "/root/evil.tar"]);
  });

  it("a copy into the VM whose shell was killed leaves no temporary directory once the next copy ran", async () => {
    const file = join(work, "payload");
    writeFileSync(file, "payload\n");
    await h.ok(["exec", vm, "sh", "-c", "mkdir /tmp/drop && touch /root/hang-x"]);
    const cp = h.spawn(["cp", file, `${vm}:/tmp/drop/`]);
    const ended = collect(cp);
    const temp = await waitFor(
      async () => (await h.ok(["exec", vm, "ls", "-a", "/tmp/drop"])).split("\n").find((n) => n.startsWith(".skiff-cp.")),
      "a temporary directory in the guest",
    );
    // SIGKILL: the shell's trap cannot run, as when the VM loses power mid-copy.
    const pid = /^\.skiff-cp\.(\d+)\./.exec(temp)?.[1];
    await h.ok(["exec", vm, "kill", "-9", pid ?? "none"]);
    expect((await ended).code).not.toBe(0);
    expect(await h.ok(["exec", vm, "ls", "-a", "/tmp/drop"])).toContain(temp);

    await h.ok(["exec", vm, "rm", "/root/hang-x"]);
    await h.ok(["cp", file, `${vm}:/tmp/drop/`]);
    expect(await h.ok(["exec", vm, "ls", "-a", "/tmp/drop"])).toBe(".\n..\npayload\n");
  });

  afterAll(async () => {
    await h.run(["exec", vm, "umount", "/dev/.skiff/bin/busybox"]);
  });
});

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

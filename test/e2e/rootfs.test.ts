/**
 * Root filesystems of both C libraries boot and exec the same way: a musl
 * one (a program built with musl-gcc and musl's loader) and a glibc one
 * (bash with its glibc libraries, taken from the host), each imported as a
 * directory with `skiff image import`.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = new Harness();
let work: string;

function copyWithLibs(root: string, program: string): void {
  const targets = [program];
  for (const line of execFileSync("ldd", [program]).toString().split("\n")) {
    const lib = line.match(/=>\s+(\/\S+)/)?.[1] ?? line.match(/^\s+(\/\S+)\s+\(/)?.[1];
    if (lib !== undefined) targets.push(lib);
  }
  for (const t of targets) {
    mkdirSync(join(root, dirname(t)), { recursive: true });
    copyFileSync(t, join(root, t));
    chmodSync(join(root, t), 0o755);
  }
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "skiff-rootfs-"));
  // musl: a dynamically linked program and musl's own loader, nothing else.
  const musl = join(work, "musl");
  mkdirSync(join(musl, "bin"), { recursive: true });
  writeFileSync(join(work, "hello.c"), '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("hello from musl, uid %d\\n", (int)getuid());return 7;}\n');
  execFileSync("musl-gcc", ["-o", join(musl, "bin", "hello"), join(work, "hello.c")]);
  mkdirSync(join(musl, "lib"), { recursive: true });
  copyFileSync(realpathSync("/lib/ld-musl-x86_64.so.1"), join(musl, "lib", "ld-musl-x86_64.so.1"));
  chmodSync(join(musl, "lib", "ld-musl-x86_64.so.1"), 0o755);
  // glibc: bash with its libraries, /etc/passwd with a user.
  const glibc = join(work, "glibc");
  copyWithLibs(glibc, "/bin/bash");
  copyWithLibs(glibc, "/usr/bin/id");
  mkdirSync(join(glibc, "etc"), { recursive: true });
  writeFileSync(join(glibc, "etc", "passwd"), "root:x:0:0:root:/root:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n");
  writeFileSync(join(glibc, "etc", "group"), "root:x:0:\nalice:x:1001:\n");
});

afterAll(async () => {
  await h.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe("rootfs of either C library", () => {
  it("a musl rootfs boots and runs its program (no shell, no passwd)", async () => {
    expect(await h.ok(["image", "import", join(work, "musl"), "--name", "musl-hello"])).toContain("musl-hello");
    const r = await h.run(["run", "--rm", "musl-hello", "/bin/hello"]);
    expect(r.stdout).toBe("hello from musl, uid 0\n");
    expect(r.code).toBe(7);
    const asUid = await h.run(["run", "--rm", "-u", "4242", "musl-hello", "/bin/hello"]);
    expect(asUid.stdout).toBe("hello from musl, uid 4242\n");
  });

  it("a glibc rootfs boots and execs the same way", async () => {
    await h.ok(["image", "import", join(work, "glibc"), "--name", "glibc-bash"]);
    await h.ok(["run", "-d", "--name", "gl", "glibc-bash", "/bin/bash", "-c", "read -t 600 x; true"]);
    expect(await h.ok(["exec", "gl", "/bin/bash", "-c", 'echo "bash $BASH_VERSION"'])).toMatch(/^bash 5\./);
    expect(await h.ok(["exec", "-u", "alice", "gl", "/usr/bin/id", "-un"])).toBe("alice\n");
    await h.ok(["rm", "-f", "gl"]);
  });
});

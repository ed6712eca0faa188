/**
 * skiff-init's supervision on a real VM (the library, the `base` image):
 * start.d scripts (given through a read-only bind mount at
 * /etc/skiff/start.d) run as root with the VM's environment, one that dies
 * is restarted with a doubling backoff, a long-running one stays up and gets
 * SIGTERM at stop; the main command under `init: { restart: "on-failure" }`
 * is restarted after a non-zero exit and not after exit 0; a script that
 * exits 0 is done, one that left its daemon in the background (`&`) is run
 * again only when that daemon ends; kernel.path and
 * kernel.args reach QEMU.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Skiff } from "../../src/engine/skiff.js";
import { Harness, sharedCache } from "./harness.js";

const lines = (path: string): string[] => (existsSync(path) ? readFileSync(path, "utf8").trim().split("\n").filter((l) => l !== "") : []);

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("supervision by skiff-init", () => {
  const h = new Harness();
  const host = mkdtempSync(join(tmpdir(), "skiff-sup-"));
  const startd = join(host, "start.d");
  const out = join(host, "out");
  const skiff = new Skiff({ home: h.home, cacheDir: sharedCache });
  let consoleLog = "";
  const consoleText = () => readFileSync(consoleLog, "utf8");

  beforeAll(async () => {
    mkdirSync(startd);
    mkdirSync(out);
    const script = (name: string, body: string, mode = 0o755) => {
      writeFileSync(join(startd, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(startd, name), mode);
    };
    script("10-flaky", 'echo "flaky ran as $(id -u) in $(pwd) with GREETING=$GREETING"; echo run >> /out/flaky; exit 3');
    script("20-daemon", "trap 'echo term >> /out/daemon-term; exit 0' TERM\necho up >> /out/daemon\nwhile :; do sleep 1; done");
    script("30-not-executable", "echo never >> /out/never", 0o644);
    // As Pontoon's layers do: the daemon backgrounded with &, the script ends with 0.
    script("40-background", "echo bg >> /out/bg\nsleep 601 &\necho $! > /out/bg.pid");
    script("50-oneshot", "echo once >> /out/once");
    const info = await skiff.create({
      image: "base",
      name: "sup",
      network: { mode: "none" },
      env: { GREETING: "hello", MULTI: "line one\nline two" },
      mounts: [
        { kind: "bind", source: startd, target: "/etc/skiff/start.d", readOnly: true },
        { kind: "bind", source: out, target: "/out", readOnly: false },
      ],
      // Fails twice, then succeeds: on-failure restarts it twice and then leaves it.
      command: ["sh", "-c", 'echo run >> /out/main; [ "$(wc -l < /out/main)" -ge 3 ] && exit 0; exit 1'],
      init: { restart: "on-failure" },
      // skiff's own vmlinux, named as a VM's own kernel would be.
      kernel: { path: (await skiff.hostFacts()).vmlinuxPath, args: ["skiff.test=yes"] },
    });
    consoleLog = join(h.home, "vms", info.id, "console.log");
    await skiff.start("sup");
  });
  afterAll(async () => {
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
    rmSync(host, { recursive: true, force: true });
  });

  it("runs start.d scripts as root in / with the VM's environment, output on the console", async () => {
    await until("the flaky script's first run", () => consoleText().includes("flaky ran"));
    expect(consoleText()).toContain("flaky ran as 0 in / with GREETING=hello");
    await until("the daemon", () => lines(join(out, "daemon")).length === 1);
    expect(existsSync(join(out, "never"))).toBe(false);
  });

  it("gives every command the VM's environment, a value with a newline whole", async () => {
    const conn = await skiff.connect("sup");
    try {
      expect((await conn.run(["sh", "-c", 'printf "%s|" "$MULTI" "$GREETING"'])).stdout).toBe("line one\nline two|hello|");
    } finally {
      await conn.close();
    }
  });

  it("restarts a start.d script that exits, with a doubling backoff, and leaves a running one alone", async () => {
    // Runs at about 0, 1, 3, 7 s after boot.
    await until("four runs of the flaky script", () => lines(join(out, "flaky")).length >= 4, 40_000);
    const text = consoleText();
    expect(text).toContain("skiff: start.d/10-flaky exited (status 3), restarting in 1s");
    expect(text).toContain("skiff: start.d/10-flaky exited (status 3), restarting in 2s");
    expect(text).toContain("skiff: start.d/10-flaky exited (status 3), restarting in 4s");
    expect(lines(join(out, "daemon"))).toEqual(["up"]);
  });

  it("runs a script that exits 0 once, and one that backgrounded its daemon again only when the daemon ends", async () => {
    await until("the background script's report", () => consoleText().includes("start.d/40-background exited (status 0), leaving its daemon running"));
    await until("the one-shot script's end", () => /skiff: start\.d\/50-oneshot exited \(status 0\)\r?\n/.test(consoleText()));
    await new Promise((r) => setTimeout(r, 3_000));
    expect(lines(join(out, "bg"))).toEqual(["bg"]);
    expect(lines(join(out, "once"))).toEqual(["once"]);
    const conn = await skiff.connect("sup");
    try {
      expect((await conn.run(["kill", readFileSync(join(out, "bg.pid"), "utf8").trim()])).code).toBe(0);
    } finally {
      await conn.close();
    }
    await until("the script's second run", () => lines(join(out, "bg")).length === 2, 15_000);
    expect(consoleText()).toContain("skiff: start.d/40-background: its daemon ended, restarting in 1s");
    expect(lines(join(out, "once"))).toEqual(["once"]);
  });

  it("restarts the main command after a non-zero exit and not after exit 0", async () => {
    await until("the main command's exit 0", () => consoleText().includes("skiff: main command exited (status 0)"));
    expect(consoleText()).toContain("skiff: main command exited (status 1), restarting in 1s");
    await new Promise((r) => setTimeout(r, 2_500));
    expect(lines(join(out, "main"))).toHaveLength(3);
  });

  it("boots the kernel given and appends its args to the command line", async () => {
    const conn = await skiff.connect("sup");
    try {
      expect((await conn.run(["cat", "/proc/cmdline"])).stdout).toMatch(/^console=ttyS0 .* skiff\.test=yes\n$/);
    } finally {
      await conn.close();
    }
  });

  it("sends SIGTERM to services at stop", async () => {
    await skiff.stop("sup");
    expect(lines(join(out, "daemon-term"))).toEqual(["term"]);
  });
});

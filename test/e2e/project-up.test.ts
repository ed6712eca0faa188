/**
 * `skiff up` on a skiff.yml, end to end with real VMs under TCG, inside a
 * network namespace this test makes (the project's private network is a
 * multicast group on its loopback): a static address, a dependency gated on
 * a healthcheck, a bind mount written from both sides, a named volume that
 * survives `down` and goes with `down -v`, recreation of exactly the service
 * that changed, and a provisioner that fails.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = Harness.inNewNetns("skt-proj");
const dir = mkdtempSync("/tmp/skp-");
const file = join(dir, "skiff.yml");
const project = ["-f", file, "-p", "demo"];

function skiffYml(opts: { webEnv?: string; extra?: string } = {}): string {
  return `version: "1"
networks:
  lan:
    subnet: 10.77.0.0/24
volumes:
  data: {}
services:
  db:
    image: base
    networks:
      lan:
        ipv4_address: 10.77.0.10
    command: ["sh", "-c", "mkdir -p /www && echo db-ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    restart: always
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "-", "http://127.0.0.1/"]
      interval: 1s
      retries: 60
  web:
    image: base
    networks: [lan]
    environment:
      WHO: ${opts.webEnv ?? "first"}
    depends_on:
      db:
        condition: service_healthy
    volumes:
      - ./src:/src
    provision:
      - shell:
          inline: wget -q -O /src/from-db.txt http://db/ && echo provisioned-web
${opts.extra ?? ""}`;
}

interface PsRow {
  service: string;
  vm: { name: string; state: string; pid: number | undefined; interfaces: { network: string; address: string }[] };
  health?: string;
}

async function ps(): Promise<PsRow[]> {
  return JSON.parse(await h.ok(["--json", "compose", ...project, "ps"])) as PsRow[];
}

beforeAll(() => {
  mkdirSync(join(dir, "src"));
  writeFileSync(file, skiffYml());
});

afterAll(async () => {
  await h.run(["down", "-v", ...project], { timeoutMs: 120_000 });
  await h.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe("skiff up", () => {
  it("brings the project up: static address, health-gated dependency, provisioning through a bind mount", async () => {
    const r = await h.run(["up", "-d", ...project], { timeoutMs: 300_000 });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    // Plain lines off a terminal, the provisioner's output among them.
    expect(r.stderr).toMatch(/demo-web-1 \| provisioned-web/);
    expect(r.stderr.indexOf("demo-db-1 is healthy")).toBeLessThan(r.stderr.indexOf("creating demo-web-1"));
    const rows = await ps();
    expect(rows.map((x) => [x.service, x.vm.name, x.vm.state, x.health ?? ""])).toEqual([
      ["db", "demo-db-1", "running", "healthy"],
      ["web", "demo-web-1", "running", ""],
    ]);
    expect(rows[0]!.vm.interfaces.find((i) => i.network === "demo_lan")!.address).toBe("10.77.0.10/24");
    // web fetched db's page by name during provisioning and wrote it into the shared directory.
    expect(readFileSync(join(dir, "src", "from-db.txt"), "utf8")).toBe("db-ok\n");
    expect(await h.ok(["logs", "--provision", "demo-web-1"])).toMatch(/step 1\/1: shell: wget[\s\S]*provisioned-web[\s\S]*exited with 0/);
  });

  it("shares the bind mount live both ways", async () => {
    writeFileSync(join(dir, "src", "host.txt"), "from the host\n");
    expect(await h.ok(["compose", ...project, "exec", "web", "cat", "/src/host.txt"])).toBe("from the host\n");
    await h.ok(["compose", ...project, "exec", "web", "sh", "-c", "echo from the guest > /src/guest.txt"]);
    expect(readFileSync(join(dir, "src", "guest.txt"), "utf8")).toBe("from the guest\n");
  });

  it("compose top shows each service's processes", async () => {
    const top = await h.ok(["compose", ...project, "top"]);
    expect(top).toMatch(/^demo-db-1 \(db\)\n\s*PID\s+PPID\s+USER/m);
    expect(top).toMatch(/^demo-web-1 \(web\)\n\s*PID/m);
    expect(top).toContain("httpd");
    expect(top).not.toMatch(/\[kthreadd\]/);
  });

  it("leaves unchanged services alone and recreates exactly the one that changed", async () => {
    const before = await ps();
    writeFileSync(file, skiffYml({ webEnv: "second" }));
    const r = JSON.parse(await h.ok(["--json", "up", "-d", ...project], { timeoutMs: 300_000 })) as { vms: { name: string; action: string }[] };
    expect(r.vms.map((v) => [v.name, v.action]).sort()).toEqual([
      ["demo-db-1", "unchanged"],
      ["demo-web-1", "recreated"],
    ]);
    const after = await ps();
    expect(after[0]!.vm.pid).toBe(before[0]!.vm.pid);
    expect(after[1]!.vm.pid).not.toBe(before[1]!.vm.pid);
    expect(await h.ok(["compose", ...project, "exec", "web", "sh", "-c", "echo $WHO"])).toBe("second\n");
  });

  it("keeps a named volume across down, and removes it with down -v", async () => {
    await h.ok(["compose", ...project, "exec", "db", "sh", "-c", "echo kept > /data/k && sync"]);
    await h.ok(["down", ...project], { timeoutMs: 120_000 });
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
    expect(await h.ok(["volume", "ls", "-q"])).toMatch(/^demo_data$/m);
    await h.ok(["up", "-d", ...project], { timeoutMs: 300_000 });
    expect(await h.ok(["compose", ...project, "exec", "db", "cat", "/data/k"])).toBe("kept\n");
    await h.ok(["down", "-v", ...project], { timeoutMs: 120_000 });
    expect(await h.ok(["volume", "ls", "-q"])).not.toMatch(/demo_data/);
    expect(await h.ok(["network", "ls", "-q"])).not.toMatch(/demo_lan/);
    expect(h.qemuPids()).toEqual([]);
  });

  it("stops at the first provisioner that fails, naming the step, command and exit code", async () => {
    writeFileSync(
      file,
      skiffYml({
        extra: `  broken:
    image: base
    network_mode_note: x
`,
      }),
    );
    // An unknown key is refused with its place before anything is made.
    const bad = await h.run(["up", "-d", ...project]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/ERR_SKIFF_CONFIG \(.*skiff\.yml:\d+:\d+\)/);
    expect(h.qemuPids()).toEqual([]);

    writeFileSync(
      file,
      skiffYml({
        extra: `  broken:
    image: base
    provision:
      - shell:
          inline: echo first-step
      - shell:
          inline: echo about to fail; exit 3
      - shell:
          inline: echo never-runs
`,
      }),
    );
    const r = await h.run(["up", "-d", ...project, "broken"], { timeoutMs: 300_000 });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/ERR_SKIFF_PROVISION_FAILED \(.*skiff\.yml:\d+:\d+\): demo-broken-1: provision step 2 \(shell: echo about to fail; exit 3\) exited with code 3/);
    expect(r.stderr).not.toMatch(/never-runs/);
    const log = await h.ok(["logs", "--provision", "demo-broken-1"]);
    expect(log).toMatch(/first-step[\s\S]*about to fail[\s\S]*step 2 exited with 3/);
    expect(log).not.toMatch(/never-runs/);
  });

  it("in the foreground, stops its VMs when SIGTERM ends it, and exits 143", async () => {
    const fgFile = join(dir, "fg.yml");
    writeFileSync(fgFile, `services:\n  sleeper:\n    image: base\n    command: ["sh", "-c", "echo fg-ready; exec sleep 3600"]\n`);
    const fg = ["-f", fgFile, "-p", "fg"];
    const child = h.spawn(["up", ...fg]);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    try {
      for (let i = 0; i < 600 && !out.includes("fg-ready"); i++) await new Promise((r) => setTimeout(r, 250));
      expect(out).toContain("fg-ready");
      const pid = (JSON.parse(await h.ok(["--json", "compose", ...fg, "ps"])) as PsRow[])[0]!.vm.pid!;
      child.kill("SIGTERM");
      const [code] = (await once(child, "exit")) as [number | null];
      expect(code).toBe(143);
      expect(out).toContain("skiff: SIGTERM: stopping the project's VMs");
      expect((JSON.parse(await h.ok(["--json", "compose", ...fg, "ps", "-a"])) as PsRow[]).map((r) => r.vm.state)).toEqual(["stopped"]);
      // Gone, or a zombie its parent has yet to reap: no QEMU runs on.
      const left = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
      expect(left === "" || /\) Z /.test(left) ? "" : `${left} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")}`).toBe("");
    } finally {
      child.kill("SIGKILL");
      await h.run(["down", ...fg], { timeoutMs: 120_000 });
    }
  }, 300_000);
});

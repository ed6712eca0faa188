/**
 * What `skiff doctor` says about the jail: how QEMU is confined on this
 * host, each part proven by running the jailer (with /bin/true for QEMU)
 * rather than guessed from the kernel's version.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Runner } from "../process/runner.js";
import { detectCgroups } from "./cgroup.js";
import { jailIdBase, jailMode } from "./ids.js";
import { jailerPath } from "./prepare.js";

export interface JailFinding {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

/** Run the jailer once with `extra` flags around /bin/true; the error it printed, or undefined when it worked. */
async function tryJail(runner: Runner, home: string, extra: (dir: string) => string[]): Promise<string | undefined> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(home, ".doctor-"));
  try {
    const root = join(dir, "root");
    const log = join(dir, "log");
    await writeFile(log, "");
    await runner.run("mkdir", [root, join(dir, "share")], { check: true });
    const ids = jailMode() === "root" ? ["--uid", String(jailIdBase()), "--gid", String(jailIdBase())] : ["--rootless"];
    const r = await runner.run(jailerPath(), [...ids, "--root", root, "--log", log, ...extra(dir), "--", "/bin/true"], { timeoutMs: 10_000 });
    return r.code === 0 ? undefined : r.stderr.trim().replace(/^skiff-jail: /, "") || `exit ${r.code}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function jailFindings(runner: Runner, home: string): Promise<JailFinding[]> {
  const mode = jailMode();
  if (mode === "off") {
    return [{ name: "jail", ok: false, detail: "off (SKIFF_JAIL=off): QEMU runs with skiff's own privileges", fix: "unset SKIFF_JAIL" }];
  }
  const findings: JailFinding[] = [];
  const failed = await tryJail(runner, home, () => []).catch((err: unknown) => (err as Error).message);
  findings.push(
    failed === undefined
      ? {
          name: "jail",
          ok: true,
          detail:
            mode === "root"
              ? `each VM's QEMU as a user of its own (from uid ${jailIdBase() + 1}), no capabilities, seccomp, a private root holding only its files`
              : "QEMU in a user namespace with a private root and seccomp, as you (without root there is no other user to become)",
        }
      : { name: "jail", ok: false, detail: failed, fix: "skiff needs mount namespaces (and, without root, unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1)" },
  );
  const cgroups = detectCgroups();
  findings.push(
    cgroups.kind === "none"
      ? { name: "cgroups", ok: mode !== "root", detail: `no limits per VM: ${cgroups.why}`, fix: "mount cgroup2 at /sys/fs/cgroup (or the v1 memory, pids and cpu hierarchies)" }
      : { name: "cgroups", ok: true, detail: cgroups.kind === "v2" ? "v2: memory.max, pids.max, cpu.max per VM" : `v1 (${Object.keys(cgroups.controllers).join(", ")}) per VM` },
  );
  if (mode === "root") {
    // Bind mounts are idmapped so the jail user acts as the directory's owner; the home's filesystem stands in for the user's.
    const idmap = await tryJail(runner, home, (dir) => ["--idmap", `${join(dir, "share")}:0:0`]).catch((err: unknown) => (err as Error).message);
    findings.push(
      idmap === undefined
        ? { name: "bind mounts", ok: true, detail: "idmapped, as their owner; 9p mapped-xattr: no set-id files or devices land on the host" }
        : { name: "bind mounts", ok: false, detail: `idmapped mounts do not work here (${idmap}): -v of a host directory will fail`, fix: "a kernel of 5.12 or newer, with the directory on ext4, xfs, btrfs or tmpfs" },
    );
    findings.push({ name: "egress", ok: true, detail: `per VM on the host (nftables inet skiff_jail_<uid>): the host's loopback refused unless --host-loopback` });
  } else {
    findings.push({
      name: "egress",
      ok: true,
      detail: "without root the host cannot tell one VM's connections from another's: guests reach the host's loopback; --egress deny uses QEMU's restrict=on, --egress allow= is refused",
    });
  }
  return findings;
}

/**
 * skiff's guest tools: the programs that make up the "agent world" the
 * guest boots into before it ever looks at the image. They come from the
 * host's Debian packages (busybox-static, dropbear-bin, openssh-sftp-server)
 * plus skiff-init, compiled from guest/*.c at build time.
 *
 * Why SSH (dropbear) as the host<->guest protocol rather than a home-made
 * one: it already does streamed exec with separate stdout/stderr, stdin,
 * exit codes, signals, PTYs with resize and SFTP, it is audited, and the same
 * channel serves stock OpenSSH, scp, sftp and VS Code through a ProxyCommand.
 * It runs over virtio-serial, so it needs no guest network and no vsock.
 */
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { SkiffError } from "../errors.js";
import { childProcess } from "../util/builtins.js";
import { packageRoot } from "../util/package-root.js";
import { cachedProbe } from "../util/probe-cache.js";

export interface GuestTool {
  /** Where the file is on the host. */
  hostPath: string;
  /** Where it goes in the guest's agent world. */
  guestPath: string;
  mode: number;
}

interface ToolSource {
  host: string;
  guest: string;
  debianPackage: string;
}

const programs: ToolSource[] = [
  { host: "/bin/busybox", guest: "/skiff/bin/busybox", debianPackage: "busybox-static" },
  { host: "/usr/sbin/dropbear", guest: "/skiff/bin/dropbear", debianPackage: "dropbear-bin" },
  { host: "/usr/lib/openssh/sftp-server", guest: "/skiff/bin/sftp-server", debianPackage: "openssh-sftp-server" },
];

export function skiffInitPath(): string {
  const path = process.env.SKIFF_GUEST_INIT ?? join(packageRoot(), "dist", "guest", "skiff-init");
  if (!existsSync(path)) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `guest init not built: ${path} (ENOENT)`, {
      hint: "run `./setup.sh` (or `npm run build`; it needs gcc and libc6-dev)",
    });
  }
  return path;
}

/**
 * Shared libraries a dynamic program needs, as ldd resolves them on this
 * host; with `cacheDir`, asked once per program (util/probe-cache.ts) while
 * every library it named is still there.
 */
async function sharedLibraries(program: string, cacheDir?: string): Promise<string[]> {
  if (cacheDir === undefined) return askLdd(program);
  const valid = (c: unknown): c is string[] => Array.isArray(c) && c.every((l) => typeof l === "string" && l.startsWith("/") && existsSync(l));
  return cachedProbe(cacheDir, "ldd", [program], () => askLdd(program), valid);
}

async function askLdd(program: string): Promise<string[]> {
  // node:child_process on first use (util/builtins.ts): `exec` reaches this module and never runs ldd.
  const { stdout } = await promisify(childProcess().execFile)("ldd", [program]);
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    const arrow = line.match(/=>\s+(\/\S+)/);
    const direct = line.match(/^\s+(\/\S+)\s+\(/);
    const path = arrow?.[1] ?? direct?.[1];
    if (path !== undefined) libs.push(path);
  }
  return libs;
}

/** Every file of the tools bundle, checked to exist. */
export async function collectGuestTools(cacheDir?: string): Promise<GuestTool[]> {
  const tools: GuestTool[] = [];
  const missing: ToolSource[] = programs.filter((p) => !existsSync(p.host));
  if (missing.length > 0) {
    throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `guest tools missing on the host: ${missing.map((m) => m.host).join(", ")}`, {
      hint: `run \`./setup.sh\` (or apt-get install ${missing.map((m) => m.debianPackage).join(" ")})`,
    });
  }
  tools.push({ hostPath: skiffInitPath(), guestPath: "/skiff/bin/skiff-init", mode: 0o755 });
  for (const p of programs) tools.push({ hostPath: p.host, guestPath: p.guest, mode: 0o755 });
  const libs = new Set<string>();
  for (const p of programs.slice(1)) for (const lib of await sharedLibraries(p.host, cacheDir)) libs.add(lib);
  for (const lib of [...libs].sort()) {
    const base = lib.slice(lib.lastIndexOf("/") + 1);
    tools.push({ hostPath: lib, guestPath: `/skiff/lib/${base}`, mode: 0o755 });
  }
  return tools;
}

/** A cache key that changes whenever any tool file changes. */
export function toolsFingerprint(tools: readonly GuestTool[]): string {
  const hash = createHash("sha256");
  for (const t of tools) {
    const st = statSync(t.hostPath);
    hash.update(`${t.hostPath}\0${t.guestPath}\0${st.size}\0${st.mtimeMs}\0`);
  }
  return hash.digest("hex");
}

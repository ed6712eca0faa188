/**
 * The tests' Debian repository (made by `./setup.sh --test` in
 * .cache/apt-repo) served on 127.0.0.1: bootstraps and layer builds take
 * their packages from here, never from past the host.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { serveDirectory, type FileServer } from "./file-server.js";
import { repoRoot, type Harness } from "./harness.js";

export const aptRepoDir = process.env.SKIFF_TEST_APT_REPO ?? join(repoRoot, ".cache", "apt-repo");

/** Serve the repository, or say how to make it. */
export async function serveAptRepo(): Promise<FileServer & { mirror: string }> {
  if (!existsSync(join(aptRepoDir, "dists"))) {
    throw new Error(`no test Debian repository in ${aptRepoDir}: run ./setup.sh --test`);
  }
  const server = await serveDirectory(aptRepoDir);
  return { ...server, mirror: `${server.base}/` };
}

/** The local image `debian` (in the shared cache), bootstrapped from `mirror` unless it is there already. */
export async function ensureDebian(h: Harness, mirror: string): Promise<void> {
  if ((await h.ok(["image", "ls"])).match(/^debian\s/m)) return;
  await h.ok(["image", "bootstrap", "--mirror", mirror], { timeoutMs: 600_000 });
}

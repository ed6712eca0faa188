// The images test/vm/stdlib-layers.test.ts boots (test/vm/stdlib-images.ts),
// built into the shared test cache ahead of that test. setup.sh --test starts
// this (with vite-node) in the background at a low CPU priority once the
// tests' Debian repository is made, so the three builds (~8 min of two cores
// cold, the suite's largest item) use what CPU the suites leave idle instead
// of running alone when the test's turn comes. The test asks for the same
// builds: a build still running holds its lock in the cache and the test
// waits for it, then finds the image made; a build that failed here is done
// again there, and its error shown there.
//
// `debian` is bootstrapped here first, from the repository the tests serve
// (test/vm/apt-repo.ts): a bootstrap is reproducible (src/image/bootstrap.ts),
// so the layer-build test's own bootstrap names the same image, and these
// builds are the ones stdlib-layers asks for. A `debian` made after the
// repository was is that image already: it is not made again (~50 s). Every line of output goes to
// stdout with the seconds since the start; the exit code says whether all
// went well.
//
//   SKIFF_HOME=… SKIFF_CACHE=.cache/test node_modules/.bin/vite-node scripts/test-std-images.ts
import { execFileSync, spawn } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { aptRepoDir, serveAptRepo } from "../test/vm/apt-repo.js";
import { repoRoot } from "../test/vm/harness.js";
import { stdlibImages } from "../test/vm/stdlib-images.js";

const cli = join(repoRoot, "dist", "cli", "main.js");
const t0 = performance.now();

function say(what: string): void {
  process.stdout.write(`${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s ${what}\n`);
}

/** The CLI with `args`, its output prefixed with `tag`; resolves to whether it exited 0. */
function skiff(tag: string, args: string[]): Promise<boolean> {
  say(`${tag}: skiff ${args.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    for (const stream of [child.stdout, child.stderr]) {
      let rest = "";
      stream.on("data", (d: Buffer) => {
        const lines = (rest + d.toString()).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) say(`${tag}: ${line}`);
      });
    }
    child.on("error", (err) => {
      say(`${tag}: ${err.message}`);
      resolve(false);
    });
    child.on("close", (code, signal) => {
      say(`${tag}: ${signal === null ? `exit ${code}` : `killed by ${signal}`}`);
      resolve(code === 0);
    });
  });
}

/** Whether the cache's `debian` was made from the repository as it is now (after its Release was written). */
function debianIsCurrent(): boolean {
  const listed = JSON.parse(execFileSync(process.execPath, [cli, "image", "ls", "--json"], { encoding: "utf8" })) as { name?: string; createdAt?: string }[];
  const made = Date.parse(listed.find((i) => i.name === "debian")?.createdAt ?? "");
  return made > statSync(join(aptRepoDir, "dists", "bookworm", "Release")).mtimeMs;
}

const repo = await serveAptRepo();
let ok = debianIsCurrent() ? (say("debian: made from this repository already"), true) : await skiff("debian", ["image", "bootstrap", "--mirror", repo.mirror]);
if (ok) {
  const built = await Promise.all(Object.entries(stdlibImages).map(([vm, layers]) => skiff(vm, ["layer", "build", ...layers, "--apt-mirror", repo.mirror])));
  ok = built.every(Boolean);
}
await repo.close();
say(ok ? "done" : "failed");
process.exitCode = ok ? 0 : 1;

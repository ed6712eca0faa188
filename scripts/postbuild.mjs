// After tsc: compile the guest's PID 1 (a static binary, so it runs in any
// image, glibc or musl or none), the host's jailer for QEMU (static too: it
// runs on after the jail's private root has hidden the host's libraries),
// the host's flock addon (Node has no flock API; see src/store/lock.ts)
// and its memfd addon (nor memfd_create; src/snapshot/shared-ram.ts), bundle the CLI (bundle-cli.mjs), make its entry
// executable, and stamp the build so ./setup.sh can tell when it is out of
// date. The stamp also names the build whose checked records skiff trusts
// (src/store/checked.ts): package.json's prebuild removes it before tsc
// runs, so a build that fails half-way leaves none.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleCli } from "./bundle-cli.mjs";
import { nodeIncludeDir } from "./node-headers.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "dist", "cli", "main.js");
const stamp = join(root, "dist", ".build-stamp");

function fail(message) {
  console.error(`postbuild: ${message}`);
  process.exit(1);
}

/** gcc `sources` (one file, or the files of one program) into `output` (atomically: a failed build leaves the old one or none). */
function compile({ source, output, flags, needs }) {
  const sources = Array.isArray(source) ? source : [source];
  const what = sources.length === 1 ? sources[0] : dirname(sources[0]);
  mkdirSync(dirname(output), { recursive: true });
  const temp = `${output}.tmp-${process.pid}`;
  const gcc = spawnSync("gcc", ["-Wall", ...flags, "-o", temp, ...sources], { stdio: "inherit" });
  if (gcc.error?.code === "ENOENT") {
    fail(`gcc not found; it builds ${what}.\n  install it: apt-get install gcc libc6-dev   (or run ./setup.sh)`);
  }
  if (gcc.error) fail(`cannot run gcc: ${gcc.error.message}`);
  if (gcc.status !== 0) {
    rmSync(temp, { force: true });
    fail(`gcc failed to build ${what} (exit ${gcc.status ?? gcc.signal}).\n  ${needs}`);
  }
  renameSync(temp, output);
}

// skiff-init is split by role into the .c files of guest/ (guest/test/ holds the golden tests' main, not part of it).
const guestDir = join(root, "guest");
compile({
  source: readdirSync(guestDir)
    .filter((f) => f.endsWith(".c"))
    .sort()
    .map((f) => join(guestDir, f)),
  output: join(root, "dist", "guest", "skiff-init"),
  flags: ["-static", "-Os", "-Wno-format-truncation"],
  needs: "a static link needs libc6-dev: apt-get install gcc libc6-dev   (or run ./setup.sh)",
});

compile({
  source: join(root, "src", "jail", "skiff-jail.c"),
  output: join(root, "dist", "jail", "skiff-jail"),
  flags: ["-static", "-Os", "-Wno-format-truncation"],
  needs: "a static link needs libc6-dev: apt-get install gcc libc6-dev   (or run ./setup.sh)",
});

const include = nodeIncludeDir();
if (include === undefined) {
  fail(
    "Node's C headers (node_api.h) not found; they build skiff's flock addon.\n" +
      "  Node from nodejs.org or NodeSource ships them in <prefix>/include/node; for Debian's nodejs: apt-get install libnode-dev   (or run ./setup.sh)",
  );
}
compile({
  source: join(root, "src", "store", "flock.c"),
  // Beside dist/store/lock.js, which loads it.
  output: join(root, "dist", "store", "flock.node"),
  flags: ["-shared", "-fPIC", "-O2", "-Wextra", `-I${include}`],
  needs: "it needs gcc, libc6-dev and Node's headers (node_api.h)   (or run ./setup.sh)",
});
compile({
  source: join(root, "src", "snapshot", "memfd.c"),
  // Beside dist/snapshot/shared-ram.js, which loads it: a sealed memfd for RAM that forks share.
  output: join(root, "dist", "snapshot", "memfd.node"),
  flags: ["-shared", "-fPIC", "-O2", "-Wextra", `-I${include}`],
  needs: "it needs gcc, libc6-dev and Node's headers (node_api.h)   (or run ./setup.sh)",
});

const skipped = await bundleCli(root);
if (skipped !== undefined && skipped !== "already bundled") console.error(`postbuild: note: ${skipped}`);
if (existsSync(cli)) chmodSync(cli, 0o755);
writeFileSync(stamp, `${new Date().toISOString()}\n`);

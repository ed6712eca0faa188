// After tsc: compile the guest's PID 1 (a static binary, so it runs in any
// image, glibc or musl or none), make the CLI entry executable, and stamp
// the build so ./setup.sh can tell when it is out of date.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "guest", "skiff-init.c");
const output = join(root, "dist", "guest", "skiff-init");
const cli = join(root, "dist", "cli", "main.js");
const stamp = join(root, "dist", ".build-stamp");

function fail(message) {
  console.error(`postbuild: ${message}`);
  process.exit(1);
}

mkdirSync(dirname(output), { recursive: true });
const temp = `${output}.tmp-${process.pid}`;
const gcc = spawnSync("gcc", ["-static", "-Os", "-Wall", "-Wno-format-truncation", "-o", temp, source], { stdio: "inherit" });
if (gcc.error?.code === "ENOENT") {
  fail("gcc not found; it builds the guest init.\n  install it: apt-get install gcc libc6-dev   (or run ./setup.sh)");
}
if (gcc.error) fail(`cannot run gcc: ${gcc.error.message}`);
if (gcc.status !== 0) {
  rmSync(temp, { force: true });
  fail(
    `gcc failed to build ${source} (exit ${gcc.status ?? gcc.signal}).\n` +
      "  a static link needs libc6-dev: apt-get install gcc libc6-dev   (or run ./setup.sh)",
  );
}
renameSync(temp, output);

if (existsSync(cli)) chmodSync(cli, 0o755);
writeFileSync(stamp, `${new Date().toISOString()}\n`);

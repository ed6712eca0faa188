import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// As root, making a VM claims a jail user host-wide (src/jail/claims.ts): unit tests keep their claims apart,
// and take them from a block of uids no real VM has, since removing a VM ends every process of its uid.
// test/unit/global-setup.ts removes the registry when the run ends.
const jailRegistry = join(tmpdir(), `skiff-unit-jail-${process.pid}`);
process.env.SKIFF_UNIT_JAIL_REGISTRY = jailRegistry;

export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    testTimeout: 10_000,
    // Files share a worker's module cache (no fresh module graph per file): the suite runs in ~75 s instead of
    // ~110 (measured quiet, 2 cores), where most of the difference was collecting and preparing 99 files.
    // Unit tests keep no state between files; a file that changes process-wide state (env, cwd, globals)
    // puts it back in its own afterEach/afterAll. Checked with --sequence.shuffle.files (two seeds).
    isolate: false,
    env: { SKIFF_JAIL_REGISTRY: jailRegistry, SKIFF_JAIL_ID_BASE: "1500000000" },
    globalSetup: ["test/unit/global-setup.ts"],
  },
});

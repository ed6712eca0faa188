import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    testTimeout: 10_000,
    // As root, making a VM claims a jail user host-wide (src/jail/claims.ts): unit tests keep their claims apart,
    // and take them from a block of uids no real VM has, since removing a VM ends every process of its uid.
    env: { SKIFF_JAIL_REGISTRY: join(tmpdir(), `skiff-unit-jail-${process.pid}`), SKIFF_JAIL_ID_BASE: "1500000000" },
  },
});

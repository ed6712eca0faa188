import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/unit/**/*.test.ts"],
    testTimeout: 10_000,
    // As root, making a VM claims a jail user host-wide (src/jail/claims.ts): unit tests keep their claims apart.
    env: { SKIFF_JAIL_REGISTRY: join(tmpdir(), `skiff-unit-jail-${process.pid}`) },
  },
});

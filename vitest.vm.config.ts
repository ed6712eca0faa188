import { defineConfig } from "vitest/config";

// Real QEMU under TCG on a 2-core host: one test file at a time, so VMs do
// not starve each other of CPU and time out; tests inside a file decide
// their own concurrency.
export default defineConfig({
  test: {
    include: ["test/vm/**/*.test.ts", "test/e2e/**/*.test.ts", "test/cloud/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    passWithNoTests: true,
  },
});

import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Files whose tests make what other files reuse from the shared cache, run
 * before the rest (otherwise in vitest's order): layer-build.test.ts tests
 * `image bootstrap`, and the `debian` it makes is then there for
 * stdlib-layers and project-router, which bootstrap their own only when it
 * is missing (one mmdebstrap and import less per run: about a minute).
 */
const makers = ["test/vm/layer-build.test.ts"];
/**
 * Last: kernel.test.ts boots skiff's own kernel, which set-up builds in the
 * background at the lowest priority while the suites run (minutes of two
 * cores); the test waits for that build, so the later it runs the less it waits.
 */
const last = ["test/vm/kernel.test.ts"];

class MakersFirstKernelLast extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const isMaker = (f: TestSpecification) => makers.some((m) => f.moduleId.endsWith(`/${m}`));
    const isLast = (f: TestSpecification) => last.some((m) => f.moduleId.endsWith(`/${m}`));
    return [...sorted.filter(isMaker), ...sorted.filter((f) => !isMaker(f) && !isLast(f)), ...sorted.filter(isLast)];
  }
}

// Real QEMU under TCG on a 2-core host: one test file at a time, so VMs do
// not starve each other of CPU and time out; tests inside a file decide
// their own concurrency.
export default defineConfig({
  test: {
    include: ["test/vm/**/*.test.ts", "test/e2e/**/*.test.ts", "test/cloud/**/*.test.ts"],
    fileParallelism: false,
    sequence: { sequencer: MakersFirstKernelLast },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    passWithNoTests: true,
  },
});

/** The unit suite's run-wide set-up: after the run, the jail registry its tests claimed users in (vitest.unit.config.ts) goes. */
import { rmSync } from "node:fs";

export function teardown(): void {
  const registry = process.env.SKIFF_UNIT_JAIL_REGISTRY;
  if (registry !== undefined && registry.includes("skiff-unit-jail-")) rmSync(registry, { recursive: true, force: true });
}

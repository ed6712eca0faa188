import { describe, expect, it } from "vitest";
import { replicaStep } from "../../src/project/replica-step.js";

describe("replicaStep", () => {
  const running = { hash: "h1", running: true, upFailed: undefined };

  it("creates what is missing and recreates what changed", () => {
    expect(replicaStep(undefined, "h1")).toBe("create");
    expect(replicaStep({ ...running, hash: "h0" }, "h1")).toBe("recreate");
    expect(replicaStep({ ...running, hash: undefined }, "h1")).toBe("recreate");
    // A changed definition wins over a failed last up: the new one is made, not the old one retried.
    expect(replicaStep({ ...running, hash: "h0", upFailed: "unhealthy" }, "h1")).toBe("recreate");
  });

  it("leaves a running replica alone only when the last up brought it up", () => {
    expect(replicaStep(running, "h1")).toBe("unchanged");
    expect(replicaStep({ ...running, upFailed: "unhealthy" }, "h1")).toBe("retry");
    expect(replicaStep({ ...running, upFailed: "ERR_SKIFF_PROVISION_FAILED" }, "h1")).toBe("retry");
    expect(replicaStep({ ...running, upFailed: "the last up did not finish" }, "h1")).toBe("retry");
  });

  it("starts a replica that is not running", () => {
    expect(replicaStep({ ...running, running: false }, "h1")).toBe("start");
    expect(replicaStep({ ...running, running: false, upFailed: "ERR_SKIFF_BOOT_FAILED" }, "h1")).toBe("retry");
  });
});

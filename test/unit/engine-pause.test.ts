import { describe, expect, it } from "vitest";
import { pausedLabel, pauseReason } from "../../src/engine/pause.js";

describe("pauseReason", () => {
  it("reads QEMU's runstate and its disks' I/O status", () => {
    expect(pauseReason("running")).toBeUndefined();
    expect(pauseReason("paused")).toBe("user");
    expect(pauseReason("io-error", ["ok", "nospace"])).toBe("disk full");
    expect(pauseReason("io-error", ["failed", "ok"])).toBe("I/O error");
    // A guest stopped on an error whose disk no longer says which: the policy that stops it is ENOSPC's.
    expect(pauseReason("io-error", [])).toBe("disk full");
    expect(pauseReason("guest-panicked")).toBe("guest-panicked");
  });

  it("labels a paused guest as ps shows it", () => {
    expect(pausedLabel("user")).toBe("paused");
    expect(pausedLabel("disk full")).toBe("paused (disk full)");
  });
});

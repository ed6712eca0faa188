import { describe, expect, it } from "vitest";
import { createLabels, endOf, expired, timeoutLabel } from "../../src/sdk/labels.js";
import { serverUrl } from "../../src/api/transport.js";
import { deadlineLabel } from "../../src/api/deadline.js";
import type { VmInfo } from "../../src/index.js";

const vm = (name: string, labels: Record<string, string>, startedAt?: string) => ({ name, labels, startedAt }) as unknown as VmInfo;

describe("sandbox labels", () => {
  it("keeps metadata and the timeout, refusing reserved keys and an image's options with a snapshot", () => {
    expect(createLabels({ metadata: { a: "1" }, timeoutMs: 1500 })).toEqual({ a: "1", [timeoutLabel]: "1500" });
    expect(() => createLabels({ metadata: { [timeoutLabel]: "1" } })).toThrow(/reserved/);
    expect(() => createLabels({ snapshot: "s", memory: 256, cpus: 2 })).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place: "memory" }));
  });

  it("a sandbox is expired once its start plus its timeout has passed; never without either", () => {
    const t0 = "2026-01-01T00:00:00.000Z";
    const vms = [vm("a", { [timeoutLabel]: "1000" }, t0), vm("b", { [timeoutLabel]: "5000" }, t0), vm("c", {}, t0), vm("d", { [timeoutLabel]: "1000" })];
    expect(endOf(vms[0]!)).toEqual(new Date(Date.parse(t0) + 1000));
    expect(expired(vms, Date.parse(t0) + 1000)).toEqual(["a"]);
    expect(expired(vms, Date.parse(t0) + 10_000)).toEqual(["a", "b"]);
  });
});

describe("a deadline moved (setTimeout)", () => {
  const t0 = "2026-01-01T00:00:00.000Z";
  const start = Date.parse(t0);

  it("ends the VM timeoutMs from now, counted in the label from its start, sooner or later than before", () => {
    const later = deadlineLabel({ startedAt: t0 }, 60_000, start + 5_000);
    expect(later).toEqual({ [timeoutLabel]: "65000" });
    expect(endOf(vm("a", later as Record<string, string>, t0))).toEqual(new Date(start + 65_000));
    expect(deadlineLabel({ startedAt: t0 }, 1_000, start + 90_000)).toEqual({ [timeoutLabel]: "91000" });
  });

  it("0 removes the deadline; a VM not started counts from the start to come", () => {
    expect(deadlineLabel({ startedAt: t0 }, 0, start)).toEqual({ [timeoutLabel]: null });
    expect(deadlineLabel({ startedAt: undefined }, 30_000, start)).toEqual({ [timeoutLabel]: "30000" });
  });
});

describe("serverUrl", () => {
  it("takes URLs as they are and a bare host:port as http", () => {
    expect(serverUrl("http://10.0.0.1:7070")).toBe("http://10.0.0.1:7070");
    expect(serverUrl("https://skiff.example:7443")).toBe("https://skiff.example:7443");
    expect(serverUrl("unix:/run/skiff.sock")).toBe("unix:/run/skiff.sock");
    expect(serverUrl("127.0.0.1:7070")).toBe("http://127.0.0.1:7070");
    expect(serverUrl("localhost:7070")).toBe("http://localhost:7070");
  });
});

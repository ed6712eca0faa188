/**
 * The guest's limits, through its own parsers (the golden harness): the
 * most it takes passes whole, one more is refused with a reason and a
 * non-zero status, never cut. The input is made by hand, as a host that
 * did not check would send it, and each limit is the host's own number
 * (guestLimits), so the two cannot drift apart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestLimits } from "../../src/guest/limits.js";
import { GoldenHarness } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
/** A request as the host would encode it, without the host's checks. */
const raw = (records: string[]) => `skiff-exec:${Buffer.from(records.join("\0")).toString("base64")}`;

describe("skiff-shell's limits", () => {
  it.each([
    ["arguments", guestLimits.args, (n: number) => many(n, (i) => `a=${i}`), /more than 1023 arguments/],
    ["environment variables", guestLimits.env, (n: number) => [...many(n, (i) => `e=V${i}=${i}`), "a=env"], /more than 255 environment variables/],
  ])("takes %s up to the limit (%i) and refuses one more", (_what, limit, records, reason) => {
    const at = harness.shell(raw(records(limit)));
    expect(at.status).toBe(0);
    expect(at.stderr).toBe("");
    const over = harness.shell(raw(records(limit + 1)));
    expect(over.status).toBe(1);
    expect(over.parsed).toBeUndefined();
    expect(over.stderr).toMatch(reason);
  });

  it("refuses a user it would have to cut, and a pidfile it could not write", () => {
    expect(harness.shell(raw([`u=${"u".repeat(guestLimits.user)}`, "a=id"])).parsed?.request.user).toBe("u".repeat(guestLimits.user));
    expect(harness.shell(raw([`u=${"u".repeat(guestLimits.user + 1)}`, "a=id"])).stderr).toMatch(/user of 128 bytes, longer than 127/);
    expect(harness.shell(raw([`p=${"p".repeat(64)}`, "a=id"])).status).toBe(0);
    expect(harness.shell(raw([`p=${"p".repeat(65)}`, "a=id"])).stderr).toMatch(/bad pidfile/);
    expect(harness.shell(raw(["p=../../etc/passwd", "a=id"])).stderr).toMatch(/bad pidfile/);
  });

  it("refuses a request longer than its buffer instead of writing past it", () => {
    const at = harness.shell(raw([`a=${"x".repeat(65536 - 2)}`]));
    expect(at.status).toBe(0);
    expect(at.parsed?.request.argv[0]).toHaveLength(65534);
    const over = harness.shell(raw([`a=${"x".repeat(65536)}`]));
    expect(over.status).toBe(1);
    expect(over.stderr).toMatch(/longer than/);
  });
});

describe("init's limits on /skiff/config", () => {
  const nic = (i: number) => `nic.${i}=52:54:00:00:00:${i.toString(16).padStart(2, "0")} eth${i} 10.${i}.0.2/24`;
  const mount = (i: number) => `mount.${i}=ext4 skiff-vol${i} rw /data/${i}`;
  const config = (lines: string[]) => harness.configFiles({ config: ["hostname=h", ...lines].join("\n") + "\n" });

  it.each([
    ["NICs", guestLimits.nics, nic, /nic\.16: more than 16 NICs/],
    ["mounts", guestLimits.mounts, mount, /mount\.16: more than 16 mounts/],
  ])("takes %s up to the limit (%i) and refuses one more", (_what, limit, line, reason) => {
    const at = config(many(limit, line));
    expect(at.status).toBe(0);
    const over = config(many(limit + 1, line));
    expect(over.status).toBe(1);
    expect(over.stderr).toMatch(reason);
  });

  it("refuses more agent ports than it serves", () => {
    expect(config([`agent.ports=${guestLimits.agentPorts}`]).parsed?.agentPorts).toBe(guestLimits.agentPorts);
    expect(config([`agent.ports=${guestLimits.agentPorts + 1}`]).stderr).toMatch(/agent\.ports: 17 ports, more than the 16/);
  });

  it.each([
    ["a NIC field too long to hold, once split into the next field", `nic.0=52:54:00:00:00:01 ${"e".repeat(16)} 10.0.0.2/24`, /bad nic\.0/],
    ["a NIC with a field missing", "nic.0=52:54:00:00:00:01 eth0", /bad nic\.0/],
    ["a NIC with a field too many", "nic.0=52:54:00:00:00:01 eth0 10.0.0.2/24 extra", /bad nic\.0/],
    ["a mount source too long to hold", `mount.0=9p ${"s".repeat(64)} rw /src`, /bad mount\.0/],
    ["a mount of an unknown kind", "mount.0=nfs server rw /src", /bad mount\.0/],
    ["a mount neither ro nor rw", "mount.0=9p skiff0 rx /src", /bad mount\.0/],
    ["a mount target that is not absolute", "mount.0=9p skiff0 rw src", /bad mount\.0/],
    ["a main command with more arguments than a request takes", `main.exec=${raw(many(guestLimits.args + 1, (i) => `a=${i}`))}`, /more than 1023 arguments/],
  ])("refuses %s", (_what, line, reason) => {
    const out = config([line]);
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(reason);
  });
});

/**
 * The SDK's handling of what a guest sends: listings parsed as hostile data
 * (forged records, control characters, cut-off streams), output kept up to
 * its bound, the guest's words in messages escaped; and the timeout label.
 */
import { describe, expect, it } from "vitest";
import { entryNameProblem, guestWords, OutputBuffer } from "../../src/sdk/guest-text.js";
import { endOf, labelsOf, sandboxInfo, timeoutLabel } from "../../src/sdk/labels.js";
import { parseListing } from "../../src/sdk/listing.js";
import type { VmInfo } from "../../src/index.js";

const rec = (...records: string[]) => Buffer.from(records.map((r) => `${r}\0`).join(""));

describe("parseListing", () => {
  it("reads types, sizes and names, and joins paths", () => {
    const { entries, skipped } = parseListing(rec("file\t12\ta.txt", "dir\t\tsub", "symlink\t\tl", "other\t\tfifo"), "/srv");
    expect(entries).toEqual([
      { name: "a.txt", type: "file", path: "/srv/a.txt", size: 12 },
      { name: "sub", type: "dir", path: "/srv/sub" },
      { name: "l", type: "symlink", path: "/srv/l" },
      { name: "fifo", type: "other", path: "/srv/fifo" },
    ]);
    expect(skipped).toBe(0);
  });

  it("a name cannot forge a record, and unsafe names are left out", () => {
    const { entries, skipped } = parseListing(
      rec("file\t1\tevil\nfile\t0\tpasswd", "file\t1\tesc\u001b[2J", "file\t1\tc1\u009b", "file\t1\t..", "file\t1\ta/b", "file\t1\t", "file\t1\ttab\there", "file\t1\tok"),
      "/d",
    );
    expect(entries.map((e) => e.name)).toEqual(["ok"]);
    expect(skipped).toBe(7);
  });

  it("drops malformed records, invalid UTF-8, an unterminated tail and entries past the bound", () => {
    const bad = Buffer.concat([rec("bogus\t1\tx", "file\tNaN\tx", "file\t1"), Buffer.from([0x66, 0x69, 0x6c, 0x65, 9, 9, 0xff, 0]), Buffer.from("file\t1\tcut")]);
    expect(parseListing(bad, "/")).toEqual({ entries: [], skipped: 5 });
    const many = rec(...Array.from({ length: 5 }, (_, i) => `file\t1\tf${i}`));
    expect(parseListing(many, "/", 3)).toMatchObject({ skipped: 2, entries: [{ name: "f0" }, { name: "f1" }, { name: "f2" }] });
  });
});

describe("OutputBuffer", () => {
  it("keeps up to its limit, hands every chunk on as text decoded across chunk boundaries", () => {
    const b = new OutputBuffer(5);
    const euro = Buffer.from("€"); // 3 bytes
    expect(b.push(euro.subarray(0, 2))).toBe("");
    expect(b.push(euro.subarray(2))).toBe("€");
    expect(b.push(Buffer.from("abcdef"))).toBe("abcdef");
    expect(b.truncated).toBe(true);
    expect(b.size).toBe(5);
    expect(b.text()).toBe("€ab");
    const bytes = b.bytes();
    expect(Buffer.isBuffer(bytes)).toBe(false);
    expect([...bytes]).toEqual([...euro, 97, 98]);
  });
});

describe("guest words and names", () => {
  it("escapes control characters and cuts long text", () => {
    expect(guestWords("rm: can't remove\n\u001b[31mred\u0007")).toBe("rm: can't remove | \\x1b[31mred\\x07");
    expect(guestWords("x".repeat(400), 10)).toBe(`${"x".repeat(9)}…`);
  });

  it("says why a name is refused", () => {
    expect(entryNameProblem("fine name.txt")).toBeUndefined();
    expect(entryNameProblem("é")).toBeUndefined();
    expect(entryNameProblem("a\nb")).toMatch(/control/);
    expect(entryNameProblem("bad\uFFFD")).toMatch(/UTF-8/);
  });
});

describe("the timeout label", () => {
  const vm = (labels: Record<string, string>, startedAt?: string) => ({ name: "v", image: "base", state: "running", cpus: 1, memoryMiB: 256, labels, startedAt }) as unknown as VmInfo;

  it("ends a sandbox its timeout after its start; none without one", () => {
    const labels = labelsOf({ team: "a" }, 60_000);
    expect(labels).toEqual({ team: "a", [timeoutLabel]: "60000" });
    expect(endOf(vm(labels, "2026-12-03T10:00:00.000Z"))?.toISOString()).toBe("2026-12-03T10:01:00.000Z");
    expect(endOf(vm(labels))).toBeUndefined();
    expect(endOf(vm({ team: "a" }, "2026-12-03T10:00:00.000Z"))).toBeUndefined();
    expect(sandboxInfo(vm(labels, "2026-12-03T10:00:00.000Z"))).toMatchObject({ sandboxId: "v", metadata: { team: "a" }, templateId: "base", memoryMB: 256 });
  });

  it("keeps metadata out of skiff's own keys", () => {
    expect(() => labelsOf({ [timeoutLabel]: "1" }, undefined)).toThrow(/reserved/);
  });
});

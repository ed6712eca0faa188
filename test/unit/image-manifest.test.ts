import { describe, expect, it } from "vitest";
import { baseManifest, type BusyboxInfo } from "../../src/image/base.js";
import { uuidFromDigest, fixupScript } from "../../src/image/ext4.js";
import { canonicalManifest, manifestDigest, normalizeManifest, textFile, type ImageManifest } from "../../src/image/manifest.js";

const busybox: BusyboxInfo = {
  path: "/bin/busybox",
  sha256: "a".repeat(64),
  version: "1.35.0",
  applets: ["bin/sh", "usr/bin/awk", "sbin/ifconfig", "bin/ls", "linuxrc", "bin/busybox", "bin/ls"],
};

describe("manifestDigest", () => {
  it("is stable across calls and independent of the applet order", () => {
    const a = manifestDigest(baseManifest(busybox));
    expect(a).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(manifestDigest(baseManifest(busybox))).toBe(a);
    expect(manifestDigest(baseManifest({ ...busybox, applets: [...busybox.applets].reverse() }))).toBe(a);
  });

  it("does not depend on where busybox was read from, only on its bytes", () => {
    const a = manifestDigest(baseManifest(busybox));
    expect(manifestDigest(baseManifest({ ...busybox, path: "/elsewhere/busybox" }))).toBe(a);
    expect(manifestDigest(baseManifest({ ...busybox, sha256: "b".repeat(64) }))).not.toBe(a);
  });

  it("changes with the layout version, the size and any file content", () => {
    const m = baseManifest(busybox);
    const a = manifestDigest(m);
    expect(manifestDigest({ ...m, layoutVersion: m.layoutVersion + 1 })).not.toBe(a);
    expect(manifestDigest({ ...m, fs: { ...m.fs, sizeBytes: 2 * m.fs.sizeBytes } })).not.toBe(a);
    const edited = m.entries.map((e) => (e.path === "/etc/hostname" ? textFile("/etc/hostname", "other\n") : e));
    expect(manifestDigest({ ...m, entries: edited })).not.toBe(a);
  });

  it("is the same for the same entries in any order", () => {
    const m = baseManifest(busybox);
    expect(canonicalManifest({ ...m, entries: [...m.entries].reverse() })).toBe(canonicalManifest(m));
  });
});

describe("baseManifest", () => {
  const m = baseManifest(busybox);
  const byPath = new Map(m.entries.map((e) => [e.path, e]));

  it("links applets into the bin dirs, skipping clashes and /linuxrc", () => {
    expect(byPath.get("/bin/sh")).toMatchObject({ type: "symlink", target: "/bin/busybox" });
    expect(byPath.get("/usr/bin/awk")).toMatchObject({ type: "symlink", target: "/bin/busybox" });
    expect(byPath.get("/bin/busybox")).toMatchObject({ type: "file", mode: 0o755, sha256: busybox.sha256 });
    expect(byPath.has("/linuxrc")).toBe(false);
    expect(m.entries.filter((e) => e.path === "/bin/ls")).toHaveLength(1);
  });

  it("has the accounts and directories a root needs, with their modes and owners", () => {
    expect(byPath.get("/root")).toMatchObject({ type: "dir", mode: 0o700 });
    expect(byPath.get("/tmp")).toMatchObject({ type: "dir", mode: 0o1777 });
    expect(byPath.get("/home/user")).toMatchObject({ type: "dir", uid: 1000, gid: 1000 });
    for (const d of ["/proc", "/sys", "/dev", "/run", "/var/tmp", "/mnt"]) expect(byPath.get(d)?.type).toBe("dir");
    const passwd = byPath.get("/etc/passwd");
    expect(passwd?.type === "file" && "text" in passwd.source ? passwd.source.text : "").toMatch(/^user:x:1000:1000:.*:\/home\/user:/m);
    const osRelease = byPath.get("/etc/os-release");
    expect(osRelease?.type === "file" && "text" in osRelease.source ? osRelease.source.text : "").toContain(
      'PRETTY_NAME="skiff base (busybox 1.35.0)"',
    );
  });

  it("is 1 GiB of ext4 labelled skiff-root", () => {
    expect(m.fs).toEqual({ type: "ext4", label: "skiff-root", sizeBytes: 1024 ** 3 });
  });
});

describe("normalizeManifest", () => {
  it("reports every problem at once", () => {
    const bad: ImageManifest = {
      kind: "test",
      layoutVersion: 1,
      fs: { type: "ext4", label: "x", sizeBytes: 4096 },
      entries: [textFile("/a/b", "x"), textFile("/c", "1"), textFile("/c", "2"), textFile("relative", "")],
    };
    const message = (() => {
      try {
        normalizeManifest(bad);
        return "";
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toContain('bad path "relative"');
    expect(message).toContain("duplicate path /c");
    expect(message).toContain("/a/b: parent /a is not a directory entry");
    expect(message).not.toContain("relativ is");
  });
});

describe("uuidFromDigest", () => {
  it("gives two different, well-formed version-8 UUIDs per digest", () => {
    const digest = manifestDigest(baseManifest(busybox));
    const fs = uuidFromDigest(digest, 0);
    const seed = uuidFromDigest(digest, 1);
    expect(fs).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(seed).not.toBe(fs);
    expect(uuidFromDigest(digest, 0)).toBe(fs);
  });
});

describe("fixupScript", () => {
  it("sets the owner of every entry and quotes applet names like [", () => {
    const script = fixupScript(baseManifest({ ...busybox, applets: ["usr/bin/["] }));
    expect(script).toContain('sif "/home/user" uid 1000\n');
    expect(script).toContain('sif "/usr/bin/[" gid 0\n');
    expect(script).toContain('sif "/" ctime @');
  });
});

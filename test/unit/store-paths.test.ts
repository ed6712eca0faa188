import { describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import {
  checkSocketPathLength,
  longestSocketPath,
  maxSocketPathBytes,
  skiffHome,
  skiffPaths,
} from "../../src/store/paths.js";
import { socketFiles, vmFiles, vmPaths } from "../../src/store/vmdir.js";

describe("skiffHome", () => {
  it("honours SKIFF_HOME over everything", () => {
    expect(skiffHome({ env: { SKIFF_HOME: "/srv/sk", XDG_DATA_HOME: "/x" }, uid: 0 })).toBe("/srv/sk");
  });

  it("uses /var/lib/skiff for root", () => {
    expect(skiffHome({ env: { XDG_DATA_HOME: "/x" }, uid: 0 })).toBe("/var/lib/skiff");
  });

  it("uses XDG_DATA_HOME for a user, else ~/.local/share", () => {
    expect(skiffHome({ env: { XDG_DATA_HOME: "/data" }, uid: 1000, userHome: "/home/u" })).toBe("/data/skiff");
    expect(skiffHome({ env: {}, uid: 1000, userHome: "/home/u" })).toBe("/home/u/.local/share/skiff");
  });

  it("ignores a relative XDG_DATA_HOME, as XDG requires", () => {
    expect(skiffHome({ env: { XDG_DATA_HOME: "rel" }, uid: 1000, userHome: "/home/u" })).toBe("/home/u/.local/share/skiff");
  });
});

describe("skiffPaths", () => {
  it("puts the cache and VMs under home unless SKIFF_CACHE says otherwise", () => {
    expect(skiffPaths({ env: { SKIFF_HOME: "/h" } })).toEqual({ home: "/h", cache: "/h/cache", vms: "/h/vms" });
    expect(skiffPaths({ env: { SKIFF_HOME: "/h", SKIFF_CACHE: "/c" } }).cache).toBe("/c");
  });
});

describe("socket path length", () => {
  it("measures the longest socket a VM really binds", () => {
    const paths = vmPaths("/h", "0123456789ab");
    const sockets = [paths.qmpSocket, paths.consoleSocket, ...paths.agentSockets];
    expect(longestSocketPath("/h").length).toBe(Math.max(...sockets.map((p) => p.length)));
    expect(socketFiles).toContain(vmFiles.qmpSocket);
    expect(vmFiles.agentSockets).toHaveLength(8);
  });

  it("accepts a short home", () => {
    expect(() => checkSocketPathLength("/var/lib/skiff")).not.toThrow();
  });

  it("rejects a home too deep for sun_path, with a hint", () => {
    // "/" + "a"*n + "/vms/…": one slash more than longestSocketPath("/").
    const fits = "/" + "a".repeat(maxSocketPathBytes - longestSocketPath("/").length - 1);
    expect(Buffer.byteLength(longestSocketPath(fits))).toBe(maxSocketPathBytes);
    expect(() => checkSocketPathLength(fits)).not.toThrow();
    const tooLong = fits + "b";
    try {
      checkSocketPathLength(tooLong);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SkiffError);
      expect((err as SkiffError).code).toBe("ERR_SKIFF_PATH_TOO_LONG");
      expect((err as SkiffError).hint).toMatch(/SKIFF_HOME/);
      expect((err as SkiffError).hint).toContain(`at most ${fits.length} bytes`);
    }
  });
});

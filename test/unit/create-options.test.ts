/** The library's door: `skiff.create` options checked strictly, with the CLI's units for memory and disk. */
import { describe, expect, it } from "vitest";
import { checkCreateOptions } from "../../src/engine/create-options.js";
import { Skiff, type CreateOptions } from "../../src/index.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

describe("checkCreateOptions", () => {
  it.each([
    ["512m", 512],
    ["1g", 1024],
    ["1.5G", 1536],
    [768, 768],
  ])("memory %j is %i MiB", (memory, mib) => {
    expect(checkCreateOptions({ image: "alpine", memory })).toEqual({ image: "alpine", memoryMiB: mib });
  });

  it("takes disk as MiB or a size with a unit", () => {
    expect(checkCreateOptions({ image: "x.qcow2", disk: "20g" })).toEqual({ image: "x.qcow2", diskBytes: 20 * 2 ** 30 });
    expect(checkCreateOptions({ image: "x.qcow2", disk: 2048 })).toEqual({ image: "x.qcow2", diskBytes: 2 * 2 ** 30 });
  });

  it("keeps every other option as given", () => {
    const opts: CreateOptions = {
      image: "alpine",
      name: "web",
      cpus: 2,
      env: { A: "1" },
      command: ["sleep", "1"],
      network: { mode: "none" },
      networks: [{ network: "back", ip: "10.0.0.5" }],
      mounts: [{ kind: "volume", volume: "data", target: "/data", readOnly: false, create: true }],
      egress: { policy: "deny" },
      restart: "on-failure",
    };
    expect(checkCreateOptions(opts)).toEqual(opts);
  });

  it.each([
    [{ image: "alpine", memroy: "512m" }, "memroy", "did you mean memory?"],
    [{ image: "alpine", cpu: 2 }, "cpu", "did you mean cpus?"],
    [{ image: "alpine", imageURL: "https://x/y.qcow2" }, "imageURL", "did you mean imageUrl?"],
  ])("an unknown key is an error naming the closest known one: %j", (input, place, hint) => {
    expect(() => checkCreateOptions(input)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place, hint }));
  });

  it("an unknown key inside an option is named by its path", () => {
    expect(() => checkCreateOptions({ image: "a", kernel: { path: "/k", argv: [] } })).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place: "kernel.argv" }));
  });

  it.each([
    [{ image: "alpine", memory: "lots" }, "ERR_SKIFF_BAD_MEMORY", "memory"],
    [{ image: "alpine", memory: 63 }, "ERR_SKIFF_BAD_MEMORY", "memory"],
    [{ image: "alpine", memory: "512m", memoryMiB: 512 }, "ERR_SKIFF_USAGE", "memory"],
    [{ image: "alpine", cpus: "2" }, "ERR_SKIFF_USAGE", "cpus"],
    [{ image: "alpine", pull: "sometimes" }, "ERR_SKIFF_USAGE", "pull"],
    [{ image: "alpine", env: { A: 1 } }, "ERR_SKIFF_USAGE", "env.A"],
    [{ image: "alpine", networks: [{ name: "x" }] }, "ERR_SKIFF_USAGE", "networks[0].network"],
    [{ name: "web" }, "ERR_SKIFF_USAGE", "image"],
  ])("refuses %j", (input, code, place) => {
    expect(() => checkCreateOptions(input)).toThrow(expect.objectContaining({ code, place }));
  });

  it("Skiff.create checks before it touches anything", async () => {
    const { home, cleanup } = await makeTempHome();
    try {
      const skiff = new Skiff({ home });
      await expect(skiff.create({ image: "alpine", memroy: "512m" } as unknown as CreateOptions)).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE", place: "memroy" });
      expect(await skiff.list({ all: true })).toEqual([]);
    } finally {
      await cleanup();
    }
  });
});

/**
 * gc lists vms/ and then looks at each entry: a create may rename its
 * `.tmp-ID` to ID in between. The claim of that live VM's jail uid must stay.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { readClaims } from "../../src/jail/claims.js";
import { VmStore } from "../../src/store/store.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

/** Listings of vms/ as gc saw them a moment before a create's rename; undefined: the real one. */
const staleListing = vi.hoisted(() => ({ entries: undefined as string[] | undefined }));
vi.mock("../../src/util/fs.js", async (original) => {
  const real = await original<typeof import("../../src/util/fs.js")>();
  return {
    ...real,
    readdirOrEmpty: async (dir: string) => {
      const entries = staleListing.entries;
      staleListing.entries = undefined;
      return entries !== undefined && dir.endsWith("/vms") ? entries : real.readdirOrEmpty(dir);
    },
  };
});

let home: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ home, cleanup } = await makeTempHome()));
afterEach(() => cleanup());

it("gc leaves the jail claim of a VM whose create renamed `.tmp-ID` to ID after gc listed it", async () => {
  const store = new VmStore({ home });
  const vm = await store.create(machineSpec("live"), { image: { digest: "sha256:abc" } });
  const claimsOf = async () => (await readClaims()).filter((c) => c.vmId === vm.id);
  const before = await claimsOf();
  expect(before).toHaveLength(vm.config.jail === undefined ? 0 : 1);
  staleListing.entries = [`.tmp-${vm.id}`];
  expect(await store.gc()).toEqual([]);
  expect(await claimsOf()).toEqual(before);
  expect((await store.list({ includeIncomplete: true })).map((v) => v.id)).toEqual([vm.id]);
  // A `.tmp-` directory that is really there and unclaimed by a live create still goes.
  await mkdir(join(home, "vms", ".tmp-0123456789ab"));
  expect(await store.gc()).toEqual([".tmp-0123456789ab"]);
  await store.remove(vm.id);
  expect(await claimsOf()).toEqual([]);
});

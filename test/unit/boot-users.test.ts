/**
 * Boot snapshots count the VMs of every home that stand on them (src/snapshot/boot-users.ts), and one this host
 * can no longer restore goes once none does.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addBootUser, liveBootUsers, makeUsersDir, pruneStaleBootSnapshots, removeBootUser, removeUnusedBootSnapshot } from "../../src/snapshot/boot-users.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ home: dir, cleanup } = await makeTempHome());
});
afterAll(() => cleanup());

let n = 0;
/** A boot snapshot directory under `root`, counting users unless `uncounted`. */
async function snapshot(root: string, opts: { uncounted?: boolean } = {}): Promise<{ id: string; dir: string }> {
  const id = (++n).toString(16).padStart(64, "0");
  const at = join(root, id);
  mkdirSync(at, { recursive: true });
  if (opts.uncounted !== true) await makeUsersDir(at);
  return { id, dir: at };
}
/** A VM directory in a home, as the store makes it. */
function vm(home: string, id: string): string {
  const path = join(home, "vms", id);
  mkdirSync(path, { recursive: true });
  return path;
}

describe("boot snapshot users", () => {
  it("counts a VM while its directory exists, in any home; a dead entry is dropped", async () => {
    const s = await snapshot(join(dir, "c1"));
    const [h1, h2] = [join(dir, "h1"), join(dir, "h2")];
    expect(await liveBootUsers(s.dir)).toBe(0);
    expect(await addBootUser(s.dir, h1, "aaaaaaaaaaaa")).toBe(true);
    expect(await addBootUser(s.dir, h2, "bbbbbbbbbbbb")).toBe(true);
    vm(h1, "aaaaaaaaaaaa");
    mkdirSync(join(h2, "vms", ".tmp-bbbbbbbbbbbb"), { recursive: true });
    expect(await liveBootUsers(s.dir)).toBe(2);
    // h2's VM was never made (a crash): its entry goes at the next count.
    rmSync(join(h2, "vms"), { recursive: true });
    expect(await liveBootUsers(s.dir)).toBe(1);
    expect(readdirSync(join(s.dir, "users")).length).toBe(1);
    await removeBootUser(s.dir, h1, "aaaaaaaaaaaa");
    expect(await liveBootUsers(s.dir)).toBe(0);
  });

  it("refuses a user once the snapshot is gone; one made before users were counted takes any and counts none", async () => {
    const s = await snapshot(join(dir, "c2"));
    rmSync(s.dir, { recursive: true });
    expect(await addBootUser(s.dir, join(dir, "h3"), "cccccccccccc")).toBe(false);
    const old = await snapshot(join(dir, "c2"), { uncounted: true });
    expect(await addBootUser(old.dir, join(dir, "h3"), "cccccccccccc")).toBe(true);
    expect(await liveBootUsers(old.dir)).toBeUndefined();
  });

  it("prunes what this host cannot restore and no VM stands on, keeps the rest, and finishes a killed prune", async () => {
    const root = join(dir, "c3");
    const home = join(dir, "h4");
    const fresh = await snapshot(root);
    const staleUnused = await snapshot(root);
    const staleUsed = await snapshot(root);
    const staleUncounted = await snapshot(root, { uncounted: true });
    await addBootUser(staleUsed.dir, home, "dddddddddddd");
    vm(home, "dddddddddddd");
    // A prune killed after it set a snapshot aside: one unused (goes), one a VM stands on (comes back).
    const asideUnused = join(root, `.pruning-${"e".repeat(64)}-00000000`);
    mkdirSync(join(asideUnused, "users"), { recursive: true });
    const asideUsed = join(root, `.pruning-${"f".repeat(64)}-00000000`);
    mkdirSync(join(asideUsed, "users"), { recursive: true });
    await addBootUser(asideUsed, home, "ffffffffffff");
    vm(home, "ffffffffffff");

    const gone = await pruneStaleBootSnapshots(root, [fresh, staleUnused, staleUsed, staleUncounted], async (s) => s.id !== fresh.id);
    expect(gone).toEqual([staleUnused.id]);
    expect([fresh, staleUsed, staleUncounted].every((s) => existsSync(s.dir))).toBe(true);
    expect(existsSync(staleUnused.dir)).toBe(false);
    expect(existsSync(asideUnused)).toBe(false);
    expect(existsSync(join(root, "f".repeat(64)))).toBe(true);
    expect(readdirSync(root).filter((e) => e.startsWith("."))).toEqual([]);
  });

  it("removes an unused one on request (prune -a), an uncounted one only when told to", async () => {
    const root = join(dir, "c4");
    const counted = await snapshot(root);
    const uncounted = await snapshot(root, { uncounted: true });
    expect(await removeUnusedBootSnapshot(root, uncounted)).toBe(false);
    expect(await removeUnusedBootSnapshot(root, uncounted, true)).toBe(true);
    await addBootUser(counted.dir, join(dir, "h5"), "aaaaaaaaaaaa");
    vm(join(dir, "h5"), "aaaaaaaaaaaa");
    expect(await removeUnusedBootSnapshot(root, counted, true)).toBe(false);
    expect(existsSync(counted.dir)).toBe(true);
  });
});

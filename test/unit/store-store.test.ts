import { mkdir, readdir, rename, writeFile } from "node:fs/promises";
import { readClaims } from "../../src/jail/claims.js";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { currentProcess } from "../../src/process/pid.js";
import type { MachineSpec } from "../../src/spec/machine.js";
import { writeJsonAtomic } from "../../src/store/atomic.js";
import { lockFileNames, tryLock } from "../../src/store/lock.js";
import { VmStore } from "../../src/store/store.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let home: string;
let cleanup: () => Promise<void>;
let store: VmStore;

beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome());
  store = new VmStore({ home });
});
afterEach(() => cleanup());

const spec = (name: string): MachineSpec => machineSpec(name);

async function created(name: string) {
  const vm = await store.create(spec(name), { image: { digest: "sha256:abc" } });
  await store.commit(vm.id);
  return vm;
}

/** Make a VM look as if its creator died: same pid, another start time, i.e. a reused pid. */
async function orphan(creatingPath: string) {
  const me = currentProcess();
  await writeJsonAtomic(creatingPath, { creator: { pid: me.pid, startTime: me.startTime - 1 }, at: new Date().toISOString() });
}

describe("create and commit", () => {
  it("creates an incomplete VM that commit completes", async () => {
    const vm = await store.create(spec("web"), { image: { digest: "sha256:abc" } });
    expect(vm.id).toMatch(/^[0-9a-f]{12}$/);
    expect(vm.paths.dir).toBe(join(home, "vms", vm.id));
    expect(vm.complete).toBe(false);
    expect(vm.config).toMatchObject({ id: vm.id, spec: { name: "web" }, image: { digest: "sha256:abc" } });
    expect(await store.list()).toEqual([]);
    expect(await store.list({ includeIncomplete: true })).toHaveLength(1);
    await expect(store.get("web")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_BUSY" });

    await store.commit(vm.id);
    const [listed] = await store.list();
    expect(listed).toMatchObject({ id: vm.id, name: "web", complete: true });
    expect(await readdir(join(home, "vms"))).toEqual([vm.id]);
  });

  it("refuses a name in use, with a hint", async () => {
    await created("db");
    await expect(store.create(spec("db"))).rejects.toMatchObject({
      code: "ERR_SKIFF_NAME_IN_USE",
      hint: expect.stringContaining("skiff rm db"),
    });
  });

  it("gives every one of many concurrent creates a distinct name or an error", async () => {
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => store.create(spec(`n${i % 3}`))));
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(3);
    expect(new Set((await store.list({ includeIncomplete: true })).map((vm) => vm.name))).toEqual(new Set(["n0", "n1", "n2"]));
  });

  it("frees the name of a VM whose creator died half-way", async () => {
    const dead = await store.create(spec("again"));
    await orphan(dead.paths.creating);
    const vm = await store.create(spec("again"));
    expect(vm.id).not.toBe(dead.id);
    expect(await readdir(join(home, "vms"))).toEqual([vm.id]);
  });

  it("refuses a home too deep for sockets", async () => {
    const deep = new VmStore({ home: join(home, "x".repeat(100)) });
    await expect(deep.create(spec("a"))).rejects.toMatchObject({ code: "ERR_SKIFF_PATH_TOO_LONG" });
  });
});

describe("get", () => {
  it("finds by name, id and unique id prefix", async () => {
    const vm = await created("alpha");
    expect((await store.get("alpha")).id).toBe(vm.id);
    expect((await store.get(vm.id)).name).toBe("alpha");
    expect((await store.get(vm.id.slice(0, 3))).name).toBe("alpha");
  });

  it("does not find a creation whose creator died", async () => {
    const vm = await store.create(spec("ghost"));
    await orphan(vm.paths.creating);
    await expect(store.get("ghost")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
  });

  it("says how to list VMs when there is no match", async () => {
    await expect(store.get("nope")).rejects.toMatchObject({
      code: "ERR_SKIFF_VM_NOT_FOUND",
      hint: expect.stringContaining("skiff ps -a"),
    });
  });

  it("refuses an ambiguous id prefix", async () => {
    // 17 ids over 16 first hex digits: two must share one.
    const vms = await Promise.all(Array.from({ length: 17 }, (_, i) => created(`v${i}`)));
    const counts = new Map<string, number>();
    for (const vm of vms) counts.set(vm.id[0]!, (counts.get(vm.id[0]!) ?? 0) + 1);
    const shared = [...counts].find(([, n]) => n > 1)![0];
    await expect(store.get(shared)).rejects.toMatchObject({ code: "ERR_SKIFF_USAGE" });
    await expect(store.get("")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
  });
});

describe("remove", () => {
  it("deletes the directory and frees the name", async () => {
    const vm = await created("gone");
    await mkdir(vm.paths.runDir);
    await writeFile(vm.paths.consoleLog, "boot\n");
    expect(await store.remove(vm.id)).toBe(true);
    expect(await readdir(join(home, "vms"))).toEqual([]);
    expect(await store.remove(vm.id)).toBe(false);
    await created("gone");
  });

  it("rejects something that is not an id", async () => {
    await expect(store.remove("../x")).rejects.toMatchObject({ code: "ERR_SKIFF_INTERNAL" });
  });
});

describe("state", () => {
  it("merges patches and drops keys set to undefined", async () => {
    const vm = await created("s");
    expect(await store.readState(vm.id)).toEqual({});
    const t1 = new Date().toISOString();
    await store.updateState(vm.id, { startedAt: t1, owner: { pid: 1, startTime: 2 } });
    await store.updateState(vm.id, { accel: "tcg", owner: undefined });
    expect(await store.readState(vm.id)).toEqual({ startedAt: t1, accel: "tcg" });
  });

  it("loses no update under concurrency", async () => {
    const vm = await created("c");
    await Promise.all(
      Array.from({ length: 20 }, () =>
        store.updateState(vm.id, (s) => ({ ...s, exit: { at: new Date().toISOString(), code: (s.exit?.code ?? 0) + 1 } })),
      ),
    );
    expect((await store.readState(vm.id)).exit?.code).toBe(20);
  });

  it("does not resurrect a removed VM", async () => {
    const vm = await created("r");
    await store.remove(vm.id);
    await expect(store.updateState(vm.id, { startedAt: "x" })).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
  });
});

describe("broken and crashed VMs", () => {
  it("reports a VM with a corrupt config instead of hiding it", async () => {
    const vm = await created("bad");
    await writeFile(vm.paths.config, "{");
    const { vms, broken } = await store.scan();
    expect(vms).toEqual([]);
    expect(broken).toMatchObject([{ id: vm.id, error: { code: "ERR_SKIFF_STATE_CORRUPT" } }]);
    expect(await store.remove(vm.id)).toBe(true);
  });

  it("gc removes only crashed creations and leftovers, at once after the crash, never a live one", async () => {
    const done = await created("done");
    const inFlight = await store.create(spec("inflight"));
    const crashed = await store.create(spec("crashed"));
    await orphan(crashed.paths.creating);
    const youngCrash = await store.create(spec("young"));
    await orphan(youngCrash.paths.creating);
    const temp = join(home, "vms", ".tmp-0123456789ab");
    await mkdir(temp);
    await mkdir(join(home, "vms", ".trash-aaaaaaaaaaaa-1234"));

    const removed = await store.gc();
    expect(removed.sort()).toEqual([".tmp-0123456789ab", ".trash-aaaaaaaaaaaa-1234", crashed.id, youngCrash.id].sort());
    const left = (await store.list({ includeIncomplete: true })).map((vm) => vm.id).sort();
    expect(left).toEqual([done.id, inFlight.id].sort());
  });

  it("gc finishes a removal killed after its rename to .trash-, jail claim included", async () => {
    const vm = await created("trashed");
    const claimed = async () => (await readClaims()).filter((c) => c.vmId === vm.id);
    expect(await claimed()).toHaveLength(vm.config.jail === undefined ? 0 : 1);
    await rename(vm.paths.dir, join(home, "vms", `.trash-${vm.id}-0badf00d`));
    expect(await store.gc()).toEqual([`.trash-${vm.id}-0badf00d`]);
    expect(await claimed()).toEqual([]);
  });

  it("gc spares a .tmp- directory without a marker while a creation holds the names lock", async () => {
    const temp = join(home, "vms", ".tmp-0123456789ab");
    await mkdir(temp, { recursive: true });
    const names = await tryLock("names", { home });
    expect(await store.gc()).toEqual([]);
    await names!.release();
    expect(await store.gc()).toEqual([".tmp-0123456789ab"]);
  });

  it("gc deletes the lock files of VMs that are gone, except held ones", async () => {
    const kept = await created("kept");
    const gone = await created("gone");
    const busy = await created("busy");
    for (const vm of [kept, gone, busy]) {
      await store.updateState(vm.id, { startedAt: "x" });
      await (await tryLock(`vm-${vm.id}-agent-0`, { home }))!.release();
    }
    await store.remove(gone.id);
    await store.remove(busy.id);
    const stillHeld = await tryLock(`vm-${busy.id}-agent-0`, { home });

    await store.gc();
    expect((await lockFileNames(home)).sort()).toEqual(
      ["names", `state-${kept.id}`, `vm-${kept.id}-agent-0`, `vm-${busy.id}-agent-0`].sort(),
    );
    await stillHeld!.release();
    await store.gc();
    expect(await lockFileNames(home)).not.toContain(`vm-${busy.id}-agent-0`);
  });
});

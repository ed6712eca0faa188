/**
 * Records read back from disk are checked against their schemas: a VM whose
 * config.json, state.json or creating.json is truncated, garbage or of the
 * wrong shape is *broken* (listed apart with a reason, removable with
 * `rm -f`), and never a throw from scan/list nor in the way of other VMs.
 * Network and volume records likewise.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Skiff } from "../../src/engine/skiff.js";
import { listNetworks, removeNetwork } from "../../src/engine/networks.js";
import { createVolume, listVolumes, removeVolume } from "../../src/engine/volumes.js";
import { NetworkStore } from "../../src/network/store.js";
import type { NetworkRecord } from "../../src/network/types.js";
import { qemuOf } from "../../src/engine/vm-process.js";
import { machineSpecSchema } from "../../src/spec/schema.js";
import { checkRecord, parseRecord } from "../../src/store/record-schema.js";
import { vmConfigSchema, vmStateSchema } from "../../src/store/schema.js";
import { isBroken, VmStore, type VmRecord } from "../../src/store/store.js";
import { VolumeStore } from "../../src/volume/store.js";
import { rejectionOf } from "./fixtures/errors.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let home: string;
let cleanup: () => Promise<void>;
let store: VmStore;

beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome("skiff-rec-"));
  store = new VmStore({ home });
});
afterEach(() => cleanup());

async function created(name: string, overrides: Parameters<typeof machineSpec>[1] = {}): Promise<VmRecord> {
  const vm = await store.create(machineSpec(name, overrides), { image: { digest: "sha256:abc" } });
  await store.commit(vm.id);
  return vm;
}

const config = async (vm: VmRecord) => JSON.parse(await readFile(vm.paths.config, "utf8")) as Record<string, unknown> & { spec: Record<string, unknown> };

type Corruption = { file: "config" | "state" | "creating"; text: (vm: VmRecord) => Promise<string>; reason: RegExp; named: boolean };
const text = (t: string) => () => Promise.resolve(t);
const configWith = (change: (c: Record<string, unknown> & { spec: Record<string, unknown> }) => unknown) => async (vm: VmRecord) => JSON.stringify(change(await config(vm)));

const corruptions: [string, Corruption][] = [
  ["an empty config.json", { file: "config", text: text(""), reason: /^config\.json: empty$/, named: false }],
  ["a truncated config.json", { file: "config", text: async (vm) => (await readFile(vm.paths.config, "utf8")).slice(0, 120), reason: /^config\.json: not valid JSON/, named: false }],
  ["a garbage config.json", { file: "config", text: text("\u0000\u0001\u00ff garbage"), reason: /^config\.json: not valid JSON/, named: false }],
  ["a config.json that is null", { file: "config", text: text("null"), reason: /^config\.json: expected an object, got null$/, named: false }],
  ["a config.json that is a list", { file: "config", text: text("[]"), reason: /^config\.json: expected an object, got an array$/, named: false }],
  ["a number for the spec's name", { file: "config", text: configWith((c) => ({ ...c, spec: { ...c.spec, name: 5 } })), reason: /^config\.json: spec\.name: expected a string, got a number$/, named: false }],
  ["a string for cpus", { file: "config", text: configWith((c) => ({ ...c, spec: { ...c.spec, cpus: "2" } })), reason: /^config\.json: spec\.cpus: expected a number, got a string$/, named: true }],
  ["no spec at all", { file: "config", text: configWith((c) => ({ ...c, spec: undefined })), reason: /^config\.json: spec: missing \(expected an object\)$/, named: false }],
  ["a network mode skiff does not know", { file: "config", text: configWith((c) => ({ ...c, spec: { ...c.spec, network: { mode: "bridge" } } })), reason: /^config\.json: spec\.network\.mode: unknown value "bridge"$/, named: true }],
  ["a mount without its target", { file: "config", text: configWith((c) => ({ ...c, spec: { ...c.spec, mounts: [{ kind: "bind", source: "/x", readOnly: false }] } })), reason: /^config\.json: spec\.mounts\.0\.target: missing/, named: true }],
  ["another VM's id", { file: "config", text: configWith((c) => ({ ...c, id: "000000000000" })), reason: /^config\.json: names id "000000000000", not its directory's$/, named: true }],
  ["a creation time that is no time", { file: "config", text: configWith((c) => ({ ...c, createdAt: "yesterday" })), reason: /^config\.json: createdAt: expected an ISO 8601 time$/, named: true }],
  ["an empty state.json", { file: "state", text: text(""), reason: /^state\.json: empty$/, named: true }],
  ["a truncated state.json", { file: "state", text: text('{"qemu": {"pid": 4242, "startTi'), reason: /^state\.json: not valid JSON/, named: true }],
  ["a garbage state.json", { file: "state", text: text("\u0089PNG\r\n\u001a\n"), reason: /^state\.json: not valid JSON/, named: true }],
  ["a string for QEMU's identity", { file: "state", text: text('{"qemu": "x"}'), reason: /^state\.json: qemu: expected an object, got a string$/, named: true }],
  ["a negative pid", { file: "state", text: text('{"qemu": {"pid": -1, "startTime": 5}}'), reason: /^state\.json: qemu\.pid: /, named: true }],
  ["an unknown accelerator", { file: "state", text: text('{"accel": "hvf"}'), reason: /^state\.json: accel: expected "kvm" or "tcg"$/, named: true }],
  ["a forward of an unknown protocol", { file: "state", text: text('{"forwards": [{"protocol": "sctp", "hostAddress": "127.0.0.1", "hostPort": 1, "guestPort": 2}]}'), reason: /^state\.json: forwards\.0\.protocol: expected "tcp" or "udp"$/, named: true }],
  ["a truncated creating.json", { file: "creating", text: text('{"creator": {"pid'), reason: /^creating\.json: not valid JSON/, named: true }],
  ["a creating.json of the wrong shape", { file: "creating", text: text('{"creator": 5, "at": "2026-01-01T00:00:00.000Z"}'), reason: /^creating\.json: creator: expected an object, got a number$/, named: true }],
];

describe("a VM with a broken record", () => {
  it.each(corruptions)("%s: broken with a reason, never a throw, and no other VM affected", async (_what, c) => {
    const good = await created("good");
    const bad = await created("sick");
    await writeFile(bad.paths[c.file], await c.text(bad));

    const { vms, broken } = await store.scan();
    expect(vms.map((vm) => vm.name)).toEqual(["good"]);
    expect(broken).toHaveLength(1);
    const [b] = broken;
    expect(b).toMatchObject({ id: bad.id, name: c.named ? "sick" : undefined, broken: true });
    expect(b!.reason).toMatch(c.reason);
    expect(b!.error).toMatchObject({ code: "ERR_SKIFF_STATE_CORRUPT", hint: expect.stringContaining(`skiff rm -f ${c.named ? "sick" : bad.id}`) });

    expect((await store.list()).map((vm) => vm.name)).toEqual(["good"]);
    expect((await store.get("good")).id).toBe(good.id);
    expect(await store.readState(good.id)).toEqual({});
    // The broken one: by id always, by name when its config still gives it; every verb but rm meets the reason.
    const err = await rejectionOf(store.get(bad.id));
    expect(err.code).toBe("ERR_SKIFF_STATE_CORRUPT");
    expect(err.message).toContain(b!.reason);
    expect(isBroken((await store.lookup(bad.id))!)).toBe(true);
    expect(isBroken((await store.lookup(bad.id.slice(0, 4)))!)).toBe(true);
    if (c.named) expect((await store.lookup("sick"))?.id).toBe(bad.id);
    // (Not all hex digits, or a name no VM has would be read as an id prefix.)
    else expect(await store.lookup("sick")).toBeUndefined();
    // A new VM is made as usual.
    await created("other");
    expect((await store.list()).map((vm) => vm.name)).toEqual(["good", "other"]);
  });

  it("is removed by Skiff.remove, by name or by id, with or without -f when no QEMU runs for it", async () => {
    const skiff = new Skiff({ home });
    const a = await created("a");
    const b = await created("b");
    await writeFile(a.paths.state, "{");
    await writeFile(b.paths.config, "garbage");
    // Sorted by what rm takes: the name, else the id.
    expect((await skiff.listBroken()).map((i) => [i.name, i.state, i.hint])).toEqual(
      [
        ["a", "broken", "skiff rm -f a"],
        [b.id, "broken", `skiff rm -f ${b.id}`],
      ].sort((x, y) => x[0]!.localeCompare(y[0]!)),
    );
    await skiff.remove("a");
    await skiff.remove(b.id, { force: true });
    expect(await store.scan()).toEqual({ vms: [], broken: [] });
  });

  it("ps's one look (listWithBroken) gives what list and listBroken give; after reconcile removed a VM it looks again", async () => {
    const skiff = new Skiff({ home });
    await created("good");
    const sick = await created("sick");
    await writeFile(sick.paths.state, "{");
    const both = await skiff.listWithBroken({ all: true });
    expect(both.vms.map((v) => v.name)).toEqual(["good"]);
    expect(both.broken.map((b) => b.name)).toEqual(["sick"]);
    expect(both).toEqual({ vms: await skiff.list({ all: true }), broken: await skiff.listBroken() });
    // A --rm VM whose run ended: reconcile removes it, and the listing is of what is left.
    const gone = await created("gone", { autoRemove: true });
    await store.updateState(gone.id, { exit: { at: new Date().toISOString(), reason: "stopped" } });
    expect((await skiff.listWithBroken({ all: true })).vms.map((v) => v.name)).toEqual(["good"]);
    expect(await store.lookup("gone")).toBeUndefined();
  });

  it("whose QEMU still runs: rm refuses, rm -f ends that process (found by the pidfile path in its argv) and removes it", async () => {
    const skiff = new Skiff({ home });
    const vm = await created("runner");
    await writeFile(vm.paths.state, '{"qemu": ');
    // A process carrying the VM's pidfile path in its argv, as QEMU's `-pidfile PATH` does.
    const stand: ChildProcess = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", "--", "-pidfile", vm.paths.pidfile], { stdio: "ignore" });
    try {
      await waitFor(() => qemuOf({ paths: vm.paths, config: {} })?.pid === stand.pid);
      expect((await skiff.listBroken())[0]).toMatchObject({ name: "runner", pid: stand.pid });
      expect((await skiff.listWithBroken()).broken[0]).toMatchObject({ name: "runner", pid: stand.pid });
      expect(await rejectionOf(skiff.remove("runner"))).toMatchObject({ code: "ERR_SKIFF_VM_RUNNING", hint: expect.stringContaining("skiff rm -f runner") });
      await skiff.remove("runner", { force: true });
      expect(qemuOf({ paths: vm.paths, config: {} })).toBeUndefined();
      expect(await store.scan()).toEqual({ vms: [], broken: [] });
    } finally {
      stand.kill("SIGKILL");
    }
  });

  it("keeps holding its name, addresses, ports and volumes while only its state.json is broken", async () => {
    const vm = await created("holder", {
      network: { mode: "user", restrict: true, forwards: [{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }] },
    });
    await writeFile(vm.paths.state, "[1, 2");
    expect(await store.list()).toEqual([]);
    expect((await store.list({ includeIncomplete: true })).map((v) => v.name)).toEqual(["holder"]);
    expect(await rejectionOf(store.create(machineSpec("holder")))).toMatchObject({
      code: "ERR_SKIFF_NAME_IN_USE",
      hint: expect.stringContaining("skiff rm -f holder"),
    });
  });

  it("a missing config.json in a VM directory is broken too, not hidden", async () => {
    const vm = await created("lost");
    await writeFile(vm.paths.config, "");
    const { rm } = await import("node:fs/promises");
    await rm(vm.paths.config);
    expect((await store.scan()).broken).toMatchObject([{ id: vm.id, reason: "config.json: missing" }]);
  });
});

describe("record schemas", () => {
  it("read back every spec skiff writes unchanged", () => {
    const full = machineSpec("full", {
      user: "1000:1000",
      workingDir: "/srv",
      network: { mode: "user", restrict: false, forwards: [], guestForwards: [{ guestAddress: "10.0.2.100", guestPort: 80, hostAddress: "127.0.0.1", hostPort: 3142 }] },
      networks: [{ network: "back", driver: "link", ip: "10.90.0.2", prefix: 24, mac: "52:54:00:12:34:56", slot: 1, gateway: "10.90.0.1" }],
      dns: ["10.0.2.3"],
      boot: { kind: "cloud", imagePath: "/c/img", format: "qcow2", diskBytes: 2 ** 30, sshPort: 2222, sshUser: "skiff" },
      mounts: [
        { kind: "bind", source: "/src", target: "/src", readOnly: true },
        { kind: "volume", volume: "data", target: "/data", readOnly: false },
      ],
      kernel: { path: "/k/vmlinux", args: ["debug"] },
      init: { restart: "on-failure" },
    });
    for (const spec of [machineSpec("plain"), full]) expect(machineSpecSchema.parse(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });

  it("default what an older skiff did not write, and accept (and drop) keys a newer one adds", () => {
    const { entrypoint: _e, exposedPorts: _x, env: _v, labels: _l, ...old } = machineSpec("old");
    const read = checkRecord({ ...old, futureKey: { deep: 1 }, network: { mode: "none", alsoNew: true } }, machineSpecSchema, "config.json");
    expect(read).toMatchObject({ ok: true, value: machineSpec("old") });
    expect(read.ok && "futureKey" in read.value).toBe(false);
  });

  it.each(["__proto__", "constructor", "hasOwnProperty", "toString"])("read back an environment variable and a label called %s", (key) => {
    const spec = machineSpec("keys", { env: JSON.parse(`{"${key}": "a"}`) as Record<string, string>, labels: JSON.parse(`{"${key}": "b"}`) as Record<string, string> });
    const read = parseRecord(JSON.stringify(spec), machineSpecSchema, "config.json");
    expect(read.ok).toBe(true);
    if (!read.ok) return;
    expect([Object.keys(read.value.env), read.value.env[key], Object.keys(read.value.labels), read.value.labels[key]]).toEqual([[key], "a", [key], "b"]);
  });

  it("name the file and the first problem, and count the rest", () => {
    const read = parseRecord('{"schemaVersion": 2, "id": 1}', vmConfigSchema, "config.json");
    expect(read).toMatchObject({ ok: false, reason: "config.json: schemaVersion: expected 1 (and 3 more problems)" });
    expect(parseRecord("{}", vmStateSchema, "state.json")).toMatchObject({ ok: true, value: {} });
  });

  it("state.json keeps the keys of a newer skiff across this one's updates", async () => {
    const vm = await created("s");
    await writeFile(vm.paths.state, JSON.stringify({ accel: "tcg", fromTheFuture: { x: 1 } }));
    expect(await store.readState(vm.id)).toEqual({ accel: "tcg" });
    await store.updateState(vm.id, { accel: "kvm" });
    expect(JSON.parse(await readFile(vm.paths.state, "utf8"))).toEqual({ accel: "kvm", fromTheFuture: { x: 1 } });
  });
});

describe("network and volume records", () => {
  const net = (name: string): NetworkRecord => ({
    schemaVersion: 1,
    name,
    id: "abc123",
    driver: "private",
    subnet: "10.90.1.0/24",
    masquerade: false,
    internal: false,
    mcast: { group: "239.255.1.2", port: 40001 },
    labels: {},
    createdAt: new Date().toISOString(),
  });

  it.each([
    ["truncated", '{"schemaVersion": 1, "na', /^bad\.json: not valid JSON/],
    ["of the wrong shape", '{"schemaVersion": 1, "name": "bad", "driver": 7}', /^bad\.json: id: missing/],
    ["filed under another name", JSON.stringify(net("other")), /^bad\.json: names "other", not "bad"$/],
  ])("a network record %s is broken: listed apart, refused with its reason, removable", async (_what, content, reason) => {
    const skiff = new Skiff({ home });
    const networks = new NetworkStore(home);
    await networks.write(net("good"));
    await writeFile(join(networks.dir, "bad.json"), content);
    const { records, broken } = await networks.scan();
    expect(records.map((n) => n.name)).toEqual(["good"]);
    expect(broken).toMatchObject([{ name: "bad", reason: expect.stringMatching(reason) }]);
    expect(await rejectionOf(networks.get("bad"))).toMatchObject({ code: "ERR_SKIFF_STATE_CORRUPT", hint: "remove it with `skiff network rm bad`" });
    const warnings: string[] = [];
    skiff.on("progress", (e) => e.phase === "warning" && warnings.push(e.message));
    expect((await listNetworks(skiff)).map((n) => n.name)).toEqual(["good"]);
    expect(warnings).toEqual([expect.stringMatching(/^network bad is broken: bad\.json: .*; remove it with `skiff network rm bad`$/)]);
    await removeNetwork(skiff, "bad");
    expect(await networks.scan()).toMatchObject({ records: [{ name: "good" }], broken: [] });
  });

  it("a broken volume record is listed apart, refused with its reason, removable", async () => {
    const skiff = new Skiff({ home });
    const volumes = new VolumeStore(home);
    await createVolume(skiff, { name: "good", sizeBytes: 16 * 2 ** 20 });
    await createVolume(skiff, { name: "bad", sizeBytes: 16 * 2 ** 20 });
    await writeFile(join(volumes.dir, "bad", "volume.json"), '{"name": "bad", "sizeBytes": "lots"}');
    expect((await volumes.scan()).broken).toMatchObject([{ name: "bad", reason: "volume.json: sizeBytes: expected a number, got a string (and 2 more problems)" }]);
    expect(await rejectionOf(volumes.get("bad"))).toMatchObject({ code: "ERR_SKIFF_STATE_CORRUPT", hint: "remove it with `skiff volume rm bad`" });
    expect((await listVolumes(skiff)).map((v) => v.name)).toEqual(["good"]);
    await removeVolume(skiff, "bad");
    expect(await volumes.scan()).toMatchObject({ records: [{ name: "good" }], broken: [] });
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * One VM's broken records never break the others. Two VMs are made (alpha,
 * bravo); alpha's state.json is truncated, then garbage, then its
 * config.json gets the wrong types: each time `ps -a`, `inspect` of bravo,
 * `create` of a new VM and `start` of bravo work, alpha shows as `broken`
 * with the reason and the fix, and `rm -f` removes it. bravo is booted once
 * and shows running throughout; at the end its own state.json breaks while
 * it runs, and `rm -f` ends its QEMU. No name is all hex digits: a name no
 * VM has any more would be read as an id prefix.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";

const h = new Harness();
afterAll(() => h.cleanup());

interface PsEntry {
  id: string;
  name: string;
  state: string;
  reason?: string;
  hint?: string;
  pid?: number;
}

async function psAll(): Promise<PsEntry[]> {
  return JSON.parse(await h.ok(["ps", "-a", "--format", "json"])) as PsEntry[];
}

async function dirOf(name: string): Promise<string> {
  return (JSON.parse(await h.ok(["inspect", name])) as { dir: string }[])[0]!.dir;
}

/** What must keep working whatever is wrong with alpha: ps -a, inspect bravo, create, start bravo. */
async function othersWork(newVm: string): Promise<PsEntry[]> {
  const ps = await psAll();
  expect(JSON.parse(await h.ok(["inspect", "bravo"]))[0]).toMatchObject({ name: "bravo" });
  await h.ok(["create", "--name", newVm, "base"]);
  await h.ok(["start", "bravo"]);
  return ps;
}

let aDir: string;
let aId: string;

describe("a VM whose records are broken", () => {
  it("a truncated state.json: alpha is broken, ps/inspect/create/start of the others work", async () => {
    await h.ok(["create", "--name", "alpha", "base"]);
    await h.ok(["create", "--name", "bravo", "base"]);
    aDir = await dirOf("alpha");
    writeFileSync(join(aDir, "state.json"), '{"qemu": {"pid": 4242, "startTi');

    const ps = await othersWork("charlie");
    expect(ps.map((v) => [v.name, v.state])).toEqual([
      ["bravo", "created"],
      ["alpha", "broken"],
    ]);
    expect(ps[1]).toMatchObject({ reason: "state.json: not valid JSON (truncated or garbage)", hint: "skiff rm -f alpha" });
    aId = ps[1]!.id;

    // The table shows it, and says why and what to do on stderr.
    const table = await h.run(["ps", "-a"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^bravo\s+running \(/m);
    expect(table.stdout).toMatch(/^alpha\s+broken\s*$/m);
    expect(table.stderr).toContain("VM alpha is broken: state.json: not valid JSON");
    expect(table.stderr).toContain("skiff rm -f alpha");
    // bravo, booted by start, shows running in plain ps; every verb on alpha says what is wrong.
    expect((await h.ok(["ps", "-q"])).split("\n")).toContain("bravo");
    const inspectA = await h.run(["inspect", "alpha"]);
    expect(inspectA.code).toBe(5);
    expect(inspectA.stderr).toContain("ERR_SKIFF_STATE_CORRUPT (alpha): VM alpha");
    expect(inspectA.stderr).toContain("hint: remove it with `skiff rm -f alpha`");
    expect((await h.run(["start", "alpha"])).stderr).toContain("state.json: not valid JSON");
  });

  it("exec -e KEY passes the host's value, and nothing when the host has none (as Docker)", async () => {
    expect(h.env.SKIFF_TEST_NOT_ON_HOST).toBeUndefined();
    const args = ["exec", "-e", "FROM_HOST", "-e", "SKIFF_TEST_NOT_ON_HOST", "bravo", "sh", "-c", 'echo "$FROM_HOST|${SKIFF_TEST_NOT_ON_HOST-unset}"'];
    const out = await h.ok(args, { env: { FROM_HOST: "yes it is" } });
    expect(out).toBe("yes it is|unset\n");
  });

  it("a garbage state.json: the same, and bravo still shows running", async () => {
    writeFileSync(join(aDir, "state.json"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff]));
    const ps = await othersWork("delta");
    expect(ps.map((v) => [v.name, v.state])).toEqual([
      ["bravo", "running"],
      ["charlie", "created"],
      ["alpha", "broken"],
    ]);
    expect(await h.ok(["exec", "bravo", "echo", "still here"])).toBe("still here\n");
  });

  it("config.json with the wrong types: alpha is broken by its id, rm -f of the id removes it", async () => {
    const config = JSON.parse(readFileSync(join(aDir, "config.json"), "utf8")) as { spec: Record<string, unknown> };
    writeFileSync(join(aDir, "config.json"), JSON.stringify({ ...config, spec: { ...config.spec, name: 5, cpus: "two" } }));
    const ps = await othersWork("echo");
    const broken = ps.filter((v) => v.state === "broken");
    expect(broken).toEqual([expect.objectContaining({ id: aId, name: aId, hint: `skiff rm -f ${aId}` })]);
    expect(broken[0]!.reason).toMatch(/^config\.json: spec\.name: expected a string, got a number \(and 1 more problem\)$/);
    expect(ps.find((v) => v.name === "bravo")?.state).toBe("running");
    // Its name is gone with its config: only the id reaches it.
    expect((await h.run(["rm", "-f", "alpha"])).code).toBe(3);
    await h.ok(["rm", "-f", aId]);
    expect((await psAll()).some((v) => v.state === "broken")).toBe(false);
  });

  it("a state.json of the wrong shape: broken, removed by name", async () => {
    writeFileSync(join(await dirOf("charlie"), "state.json"), '{"qemu": "x"}');
    const ps = await othersWork("foxtrot");
    expect(ps.find((v) => v.name === "charlie")).toMatchObject({ state: "broken", reason: "state.json: qemu: expected an object, got a string" });
    await h.ok(["rm", "-f", "charlie"]);
    expect((await psAll()).map((v) => [v.name, v.state]).sort()).toEqual([
      ["bravo", "running"],
      ["delta", "created"],
      ["echo", "created"],
      ["foxtrot", "created"],
    ]);
  });

  it("a running VM whose state.json breaks: rm refuses, rm -f ends its QEMU and removes it", async () => {
    const qemu = h.qemuPids();
    expect(qemu).toHaveLength(1);
    writeFileSync(join(await dirOf("bravo"), "state.json"), "{");
    const ps = await psAll();
    expect(ps.find((v) => v.name === "bravo")).toMatchObject({ state: "broken", pid: qemu[0] });
    expect((await h.run(["ps", "-a"])).stdout).toMatch(new RegExp(`^bravo\\s+broken \\(QEMU pid ${qemu[0]}\\)`, "m"));
    const rm = await h.run(["rm", "bravo"]);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toContain("ERR_SKIFF_VM_RUNNING");
    await h.ok(["rm", "-f", "bravo"]);
    expect(h.qemuProcessesUnderHome()).toEqual([]);
    expect((await psAll()).map((v) => v.name).sort()).toEqual(["delta", "echo", "foxtrot"]);
    await h.ok(["rm", "delta", "echo", "foxtrot"]);
    expect(await psAll()).toEqual([]);
  });
});

/**
 * Records checked before are read without zod (src/store/checked.ts): the
 * value comes back as the check returned it (defaults filled, unknown keys
 * left out, keys in the schema's order), and any change of the bytes, the
 * schema or the build means a new check.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { machineSpecSchema } from "../../src/spec/schema.js";
import { checkedValue, pruneChecked, resetChecked, useCheckedDir } from "../../src/store/checked.js";
import { readRecord, recordSchema } from "../../src/store/record.js";
import { parseRecord } from "../../src/store/record-schema.js";
import type { MachineSpec } from "../../src/spec/machine.js";
import { machineSpec } from "./fixtures/spec.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

let home: string;
let cleanup: () => Promise<void>;
let dir: string;

beforeEach(async () => {
  ({ home, cleanup } = await makeTempHome("skiff-checked-"));
  dir = join(home, "checked");
  useCheckedDir(dir, { build: "build-1" });
});
afterEach(async () => {
  resetChecked();
  await cleanup();
});

/** A schema that counts its loads: a load is a check. */
function counted(id = "spec") {
  const loads = { n: 0 };
  return {
    loads,
    schema: recordSchema<MachineSpec>(id, () => {
      loads.n++;
      return Promise.resolve(machineSpecSchema);
    }),
  };
}

/** A spec as an older skiff wrote it (no env, labels, entrypoint: defaulted on read), its keys in its own order, with a key from the future. */
function olderRecord(): string {
  const { env: _env, labels: _labels, entrypoint: _entrypoint, ...rest } = machineSpec("old");
  const reordered = Object.fromEntries(Object.entries({ ...rest, fromTheFuture: { x: 1 } }).reverse());
  return JSON.stringify(reordered);
}

describe("records checked before", () => {
  it("come back as the check returned them, without loading the schema", async () => {
    const path = join(home, "config.json");
    const text = olderRecord();
    writeFileSync(path, text);
    const first = counted();
    const read1 = await readRecord(path, first.schema);
    expect(first.loads.n).toBe(1);
    const second = counted();
    const read2 = await readRecord(path, second.schema);
    expect(second.loads.n).toBe(0);
    const zod = parseRecord(text, machineSpecSchema, "config.json");
    expect(zod.ok && read1?.ok && read2?.ok).toBe(true);
    if (!zod.ok || read2?.ok !== true) return;
    // The same value in every key and its order: defaults filled, the unknown key left out.
    expect(JSON.stringify(read2.value)).toBe(JSON.stringify(zod.value));
    expect(read2.value.env).toEqual({});
    expect("fromTheFuture" in read2.value).toBe(false);
    expect(read2.raw).toEqual(JSON.parse(text));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const entry of readdirSync(dir)) expect(statSync(join(dir, entry)).mode & 0o777).toBe(0o600);
  });

  it("a byte changed, another schema or another build means a check", async () => {
    const path = join(home, "config.json");
    writeFileSync(path, JSON.stringify(machineSpec("a")));
    await readRecord(path, counted().schema);
    writeFileSync(path, JSON.stringify({ ...machineSpec("a"), cpus: "2" }));
    const changed = counted();
    expect(await readRecord(path, changed.schema)).toMatchObject({ ok: false, reason: "config.json: cpus: expected a number, got a string" });
    expect(changed.loads.n).toBe(1);

    writeFileSync(path, JSON.stringify(machineSpec("a")));
    const other = counted("other-schema");
    await readRecord(path, other.schema);
    expect(other.loads.n).toBe(1);

    useCheckedDir(dir, { build: "build-2" });
    const rebuilt = counted();
    await readRecord(path, rebuilt.schema);
    expect(rebuilt.loads.n).toBe(1);
  });

  it("a record that fails its check is never remembered, and a damaged entry is not trusted", async () => {
    const path = join(home, "config.json");
    writeFileSync(path, JSON.stringify({ ...machineSpec("a"), memoryMiB: -1 }));
    await readRecord(path, counted().schema);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);

    const text = JSON.stringify(machineSpec("a"));
    writeFileSync(path, text);
    await readRecord(path, counted().schema);
    const [entry] = readdirSync(dir);
    writeFileSync(join(dir, entry!), '{"name": "trunc');
    expect(checkedValue("spec", text)).toBeUndefined();
    const again = counted();
    const read = await readRecord(path, again.schema);
    expect(again.loads.n).toBe(1);
    expect(read).toMatchObject({ ok: true, value: machineSpec("a") });
    expect(JSON.parse(readFileSync(join(dir, entry!), "utf8"))).toEqual(machineSpec("a"));
  });

  it("a key such as __proto__ in a user map survives the way back", async () => {
    const path = join(home, "config.json");
    const spec = machineSpec("keys", { env: JSON.parse('{"__proto__": "a", "constructor": "b"}') as Record<string, string> });
    writeFileSync(path, JSON.stringify(spec));
    await readRecord(path, counted().schema);
    const cached = counted();
    const read = await readRecord(path, cached.schema);
    expect(cached.loads.n).toBe(0);
    expect(read?.ok).toBe(true);
    if (read?.ok !== true) return;
    expect([Object.keys(read.value.env), read.value.env["__proto__"], read.value.env["constructor"]]).toEqual([["__proto__", "constructor"], "a", "b"]);
  });

  it("nothing is remembered without a build (skiff run from its sources) or a place", async () => {
    const path = join(home, "config.json");
    writeFileSync(path, JSON.stringify(machineSpec("a")));
    resetChecked();
    await readRecord(path, counted().schema);
    useCheckedDir(dir);
    await readRecord(path, counted().schema);
    expect(() => readdirSync(dir)).toThrow(/ENOENT/);
  });

  it("the directory is emptied past 1024 entries", () => {
    mkdirSync(dir);
    for (let i = 0; i < 3; i++) writeFileSync(join(dir, `e${i}`), "{}");
    pruneChecked(dir);
    expect(readdirSync(dir)).toHaveLength(3);
    for (let i = 3; i < 1025; i++) writeFileSync(join(dir, `e${i}`), "{}");
    pruneChecked(dir);
    expect(readdirSync(dir)).toHaveLength(0);
  });
});

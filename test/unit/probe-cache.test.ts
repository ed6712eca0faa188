/** Facts about host programs are asked once per program, and again once the program changes. */
import { mkdtempSync, rmSync, utimesSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cachedProbe } from "../../src/util/probe-cache.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(): { cache: string; program: string; asked: () => number; probe: () => Promise<string> } {
  const dir = mkdtempSync(join(tmpdir(), "skiff-probe-"));
  dirs.push(dir);
  const cache = join(dir, "cache");
  const program = join(dir, "prog");
  writeFileSync(program, "v1");
  let count = 0;
  const isString = (c: unknown): c is string => typeof c === "string";
  const probe = () => cachedProbe(cache, "prog", [program], async () => `answer ${++count}`, isString);
  return { cache, program, asked: () => count, probe };
}

describe("cachedProbe", () => {
  it("asks once while the program is unchanged", async () => {
    const { probe, asked, cache } = setup();
    expect(await probe()).toBe("answer 1");
    expect(await probe()).toBe("answer 1");
    expect(asked()).toBe(1);
    expect(readdirSync(join(cache, "probes"))).toHaveLength(1);
  });

  it("asks again once the program is replaced or touched", async () => {
    const { probe, asked, program } = setup();
    await probe();
    writeFileSync(program, "v2");
    const later = new Date(Date.now() + 5_000);
    utimesSync(program, later, later);
    expect(await probe()).toBe("answer 2");
    expect(asked()).toBe(2);
  });

  it("asks again when the cached answer is not what it should be", async () => {
    const { probe, asked, cache } = setup();
    await probe();
    const [file] = readdirSync(join(cache, "probes"));
    writeFileSync(join(cache, "probes", file!), "42\n");
    expect(await probe()).toBe("answer 2");
    writeFileSync(join(cache, "probes", file!), "{not json");
    expect(await probe()).toBe("answer 3");
    expect(await probe()).toBe("answer 3");
    expect(asked()).toBe(3);
  });

  it("a missing program is asked every time (its own error is the answer), and nothing is cached", async () => {
    const { cache } = setup();
    let count = 0;
    const ask = async () => ++count;
    const isNumber = (c: unknown): c is number => typeof c === "number";
    await cachedProbe(cache, "gone", [join(cache, "nowhere")], ask, isNumber);
    await cachedProbe(cache, "gone", [join(cache, "nowhere")], ask, isNumber);
    expect(count).toBe(2);
  });
});

import { describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { namePattern, randomName, uniqueRandomName, validateName } from "../../src/util/names.js";

/** Deterministic stand-in for Math.random. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

describe("randomName", () => {
  it("is adjective_noun and a valid name", () => {
    for (let i = 0; i < 200; i++) {
      const name = randomName();
      expect(name).toMatch(/^[a-z]+_[a-z]+$/);
      expect(validateName(name)).toBe(name);
    }
  });

  it("covers both ends of the word lists", () => {
    expect(randomName(sequence(0, 0))).toBe("agile_albatross");
    expect(randomName(sequence(0.999999, 0.999999))).toBe("witty_wave");
  });

  it("avoids names in use, adding a digit once plain names keep colliding", () => {
    expect(uniqueRandomName((n) => n === "agile_albatross", sequence(0, 0, 0.999, 0.999))).toBe("witty_wave");
    const name = uniqueRandomName((n) => !/\d$/.test(n), sequence(0));
    expect(name).toBe("agile_albatross0");
  });
});

describe("validateName", () => {
  it.each(["a", "web", "web-1", "db_2.local", "A1", "x".repeat(128)])("accepts %j", (name) => {
    expect(validateName(name)).toBe(name);
  });

  it.each(["", "-web", ".hidden", "_x", "a/b", "a b", "ä", "x".repeat(129), "web\n"])("rejects %j", (name) => {
    let err: unknown;
    try {
      validateName(name, "skiff.yml:4");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SkiffError);
    expect((err as SkiffError).code).toBe("ERR_SKIFF_BAD_NAME");
    expect((err as SkiffError).place).toBe("skiff.yml:4");
    expect(namePattern.test(name)).toBe(false);
  });
});

import { describe, expect, it } from "vitest";
import { parseYaml } from "../../src/config/yaml-doc.js";
import { errorOf } from "./fixtures/errors.js";

describe("YAML with places", () => {
  const doc = parseYaml("services:\n  web:\n    image: x\n    bogus: 1\n  list:\n    - a\n    - b\n", "skiff.yml");

  it("knows where every value and key is", () => {
    expect(doc.placeOf(["services", "web", "bogus"])).toBe("skiff.yml:4:12");
    expect(doc.keyPlaceOf(["services", "web", "bogus"])).toBe("skiff.yml:4:5");
    expect(doc.placeOf(["services", "list", 1])).toBe("skiff.yml:7:7");
    // A path that is not there: the nearest ancestor that is.
    expect(doc.placeOf(["services", "nope", "x"])).toBe("skiff.yml:2:3");
  });

  it("refuses bad YAML, duplicate keys, complex keys and alias bombs with a place", () => {
    expect(errorOf(() => parseYaml("a: [\n", "f.yml"))).toMatchObject({ code: "ERR_SKIFF_CONFIG", place: "f.yml:2:1" });
    expect(errorOf(() => parseYaml("a: 1\na: 2\n", "f.yml"))).toMatchObject({ code: "ERR_SKIFF_CONFIG", place: "f.yml:2:1" });
    expect(errorOf(() => parseYaml("a:\n  ? [x]\n  : b\n", "f.yml"))).toMatchObject({ code: "ERR_SKIFF_CONFIG", place: "f.yml:2:5" });
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]", ...Array.from({ length: 6 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}, *${String.fromCharCode(97 + i)}]`)].join("\n");
    expect(errorOf(() => parseYaml(bomb, "f.yml"))).toMatchObject({ code: "ERR_SKIFF_CONFIG" });
  });
});

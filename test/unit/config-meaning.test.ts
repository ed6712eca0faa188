/**
 * What a project file means once read: `network_mode: none` is no network at
 * all; user names that plain objects answer to (`__proto__`, `constructor`)
 * are names like any other; `skiff config` shows a user's `place` variable;
 * pontoon's `mcp` blocks are read into the project.
 */
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { composeToProject } from "../../src/config/compose.js";
import type { LoaderContext } from "../../src/config/context.js";
import { pontoonToProject } from "../../src/config/pontoon.js";
import { renderProject } from "../../src/config/render.js";
import { skiffToProject } from "../../src/config/skiff-file.js";
import { validateProject } from "../../src/config/validate.js";
import { parseYaml } from "../../src/config/yaml-doc.js";
import { desiredVm } from "../../src/project/desired.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { errorOf } from "./fixtures/errors.js";

const ctx: LoaderContext = { dir: "/proj", projectName: "demo", files: ["/proj/x.yml"], env: { HOME: "/home/u" } };
const compose = (text: string): ProjectSpec => composeToProject([parseYaml(text, "compose.yaml")], ctx);
const skiff = (text: string): ProjectSpec => skiffToProject([parseYaml(text, "skiff.yml")], ctx);
const pontoon = (text: string): ProjectSpec => pontoonToProject([parseYaml(text, "pontoon.yml")], ctx);
const image = { ref: "debian", digest: "sha256:aaa" };

describe("network_mode", () => {
  it.each<[string, string, boolean, unknown, boolean]>([
    ["none: no NIC at all", "network_mode: none", false, { mode: "none" }, false],
    ["absent: user networking", "hostname: web", true, { mode: "user", forwards: [] }, false],
    ["host: user networking, with a warning", "network_mode: host", true, { mode: "user", forwards: [] }, true],
  ])("%s", (_what, line, userNetwork, network, warned) => {
    const spec = compose(`services:\n  web:\n    image: debian\n    ${line}\n`);
    const web = spec.services[0]!;
    expect(web.userNetwork).toBe(userNetwork);
    expect(desiredVm(spec, web, 1, image).options.network).toMatchObject(network as object);
    expect(spec.warnings.some((w) => w.message.startsWith("network_mode"))).toBe(warned);
  });
});

const awkward = ["__proto__", "constructor", "hasOwnProperty", "toString"];
/** `__proto__` starts with '_': not a name skiff gives a VM, network or volume (nor compose a service). */
const asNames = awkward.filter((n) => /^[a-z]/i.test(n));

describe("names that plain objects already answer to", () => {
  it.each(awkward)("%s as a variable and a label (compose, skiff.yml)", (name) => {
    const specs = [
      compose(`services:\n  web:\n    image: debian\n    environment:\n      ${name}: a\n    labels:\n      ${name}: b\n  db:\n    image: debian\n    environment: ["${name}=c"]\n`),
      skiff(`services:\n  web:\n    image: debian\n    environment:\n      ${name}: a\n  db:\n    image: debian\n    environment: ["${name}=c"]\n`),
    ];
    for (const spec of specs) {
      validateProject(spec);
      expect(spec.services.map((s) => [Object.keys(s.environment), s.environment[name]])).toEqual([[[name], "a"], [[name], "c"]]);
      const shown = JSON.parse(JSON.stringify(renderProject(spec))) as { services: { environment: object; labels?: object }[] };
      expect(shown.services.map((s) => Object.keys(s.environment))).toEqual([[name], [name]]);
      expect(stringify(renderProject(spec))).toContain(`${name}: a`);
    }
    const labels = specs[0]!.services[0]!.labels!;
    expect([Object.keys(labels), labels[name]]).toEqual([[name], "b"]);
  });

  it.each(asNames)("%s as a compose service, network and volume", (name) => {
    const spec = compose(`services:\n  ${name}:\n    image: debian\n    networks: [${name}]\n    volumes: ["${name}:/data"]\nnetworks:\n  ${name}: {}\nvolumes:\n  ${name}: {}\n`);
    validateProject(spec);
    const svc = spec.services[0]!;
    expect([svc.name, svc.networks[0]!.network, svc.volumes[0], spec.networks.map((n) => n.name), spec.volumes.map((v) => v.name)]).toEqual([
      name,
      name,
      { kind: "volume", volume: name, target: "/data", readOnly: false },
      [name],
      [name],
    ]);
  });

  it.each(asNames)("%s as a skiff.yml service, network and volume", (name) => {
    const spec = skiff(`services:\n  ${name.toLowerCase()}:\n    image: debian\n    networks: [${name}]\n    volumes: ["${name}:/data"]\nnetworks:\n  ${name}: {}\nvolumes:\n  ${name}: {}\n`);
    validateProject(spec);
    expect([spec.services.map((s) => s.name), spec.networks.map((n) => n.name), spec.volumes.map((v) => v.name)]).toEqual([[name.toLowerCase()], [name], [name]]);
  });

  it.each(asNames)("%s as a pontoon service and network", (name) => {
    const spec = pontoon(`networks:\n  ${name}: { subnet: 10.0.0.0/24 }\nservices:\n  ${name}:\n    layers: [base]\n    networks:\n      ${name}: { ipv4_address: 10.0.0.5 }\n`);
    validateProject(spec);
    expect([spec.services.map((s) => s.name), spec.networks.map((n) => n.name), spec.services[0]!.networks]).toEqual([[name], [name], [{ network: name, ipv4Address: "10.0.0.5", masquerade: false }]]);
  });

  it("__proto__ as a service, network and volume name is refused at each place, not lost", () => {
    const spec = compose('services:\n  __proto__:\n    image: debian\n    networks: [__proto__]\n    volumes: ["__proto__:/data"]\nnetworks:\n  __proto__: {}\nvolumes:\n  __proto__: {}\n');
    expect(spec.services.map((s) => s.name)).toEqual(["__proto__"]);
    const err = errorOf(() => validateProject(spec));
    expect((err.details as { problems: { place: string; message: string }[] }).problems).toEqual([
      { place: "compose.yaml:2:3", message: 'service __proto__: invalid service name "__proto__"', hint: expect.any(String) },
      { place: "compose.yaml:7:3", message: 'network __proto__: invalid network name "__proto__"', hint: expect.any(String) },
      { place: "compose.yaml:9:3", message: 'volume __proto__: invalid volume name "__proto__"', hint: expect.any(String) },
    ]);
  });

  it("still refuses an unknown key named like one, at its place", () => {
    const err = errorOf(() => compose("services:\n  web:\n    image: debian\n    constructor: 1\n"));
    expect([err.code, err.place, err.message]).toEqual(["ERR_SKIFF_CONFIG", "compose.yaml:4:5", expect.stringContaining('unknown key "constructor"')]);
  });
});

describe("skiff config output", () => {
  it.each<[string, () => ProjectSpec, string]>([
    ["compose environment and labels", () => compose("services:\n  web:\n    image: debian\n    environment: { place: here, PLACE: x }\n    labels: [place=label]\n"), "compose"],
    ["skiff.yml environment", () => skiff("services:\n  web:\n    image: debian\n    environment: { place: here, PLACE: x }\n"), "skiff"],
  ])("keeps a user's key named place (%s) and drops skiff's own", (_what, load, format) => {
    const shown = renderProject(load()) as { format: string; services: Record<string, unknown>[] };
    const web = shown.services[0]!;
    expect(shown.format).toBe(format);
    expect(web["place"]).toBeUndefined();
    expect(web["environment"]).toEqual({ place: "here", PLACE: "x" });
    if (format === "compose") expect(web["labels"]).toEqual({ place: "label" });
    expect(JSON.stringify(shown)).not.toMatch(/compose\.yaml:|skiff\.yml:/);
  });
});

/** Pontoon's README example with `mcp` blocks under `defaults` and under services. */
const withMcp = `version: "1"

defaults:
  kernel: ./vm/build/vmlinuz
  alpine: "3.21"
  mcp:
    enabled: true
    tools: [exec, logs]

networks:
  lan:
    subnet: 10.0.0.0/24

services:
  router:
    memory: 128m
    layers: [base, firewall]
    networks:
      lan:
        ipv4_address: 10.0.0.1
    mcp:
      enabled: false

  webserver:
    memory: 256m
    layers: [base, nginx]
    networks:
      lan:
        ipv4_address: 10.0.0.80
        gateway: 10.0.0.1
    mcp:
      tools: [exec, logs, inject]
      files: { allow: [/var/www] }
`;

describe("pontoon mcp blocks", () => {
  it("reads them into each service, the service's keys over defaults', and shows them", () => {
    const spec = pontoon(withMcp);
    validateProject(spec);
    expect(spec.services.map((s) => [s.name, s.mcp])).toEqual([
      ["router", { enabled: false, tools: ["exec", "logs"] }],
      ["webserver", { enabled: true, tools: ["exec", "logs", "inject"], files: { allow: ["/var/www"] } }],
    ]);
    const shown = renderProject(spec) as { services: { mcp?: unknown }[] };
    expect(shown.services.map((s) => s.mcp)).toEqual(spec.services.map((s) => s.mcp));
    expect(pontoon("services:\n  a: { layers: [base] }\n").services[0]!.mcp).toBeUndefined();
  });

  it.each<[string, string, string, RegExp]>([
    ["a service's mcp that is not a map", "services:\n  a:\n    mcp: yes\n", "pontoon.yml:3:10", /services\.a\.mcp/],
    ["defaults' mcp that is a list", "defaults:\n  mcp: [exec]\nservices:\n  a: {}\n", "pontoon.yml:2:8", /defaults\.mcp/],
  ])("refuses %s at its place", (_what, text, place, message) => {
    const err = errorOf(() => pontoon(text));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", place]);
    expect(err.message).toMatch(message);
  });
});

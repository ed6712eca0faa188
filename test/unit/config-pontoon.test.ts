import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { pontoonToProject } from "../../src/config/pontoon.js";
import { parseYaml } from "../../src/config/yaml-doc.js";
import { loadLayers } from "../../src/layer/search.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { errorOf } from "./fixtures/errors.js";

const ctx = { dir: "/proj", projectName: "demo", files: ["/proj/pontoon.yml"], env: { HOME: "/home/u" } };
const load = (text: string): ProjectSpec => pontoonToProject([parseYaml(text, "pontoon.yml")], ctx);

const empty = { environment: {}, ports: [], dns: [], volumes: [], dependsOn: [], restart: "no", replicas: 1, provision: [] };

/** The README's example, as pontoon documents it. */
const readme = `version: "1"

defaults:
  kernel: ./vm/build/vmlinuz
  alpine: "3.21"

networks:
  lan:
    subnet: 10.0.0.0/24
  wan:
    subnet: 10.0.1.0/24
  wire:
    link: true
    internal: true

services:
  router:
    memory: 128m
    cpus: 2
    layers:
      - base
      - firewall
    networks:
      lan:
        ipv4_address: 10.0.0.1
      wan:
        ipv4_address: 10.0.1.1
        masquerade: true
    kernel_args:
      svc.start: firewall

  webserver:
    memory: 256m
    cpus: 1
    layers: [base, nginx]
    networks:
      lan:
        ipv4_address: 10.0.0.80
        gateway: 10.0.0.1
    kernel_args:
      svc.start: nginx
      quiet: true

mcp:
  tools: [exec, logs]
  allow: { services: [webserver] }
`;

describe("pontoonToProject", () => {
  it("translates pontoon's README example to the whole ProjectSpec", () => {
    expect(load(readme)).toEqual({
      name: "demo",
      dir: "/proj",
      format: "pontoon",
      files: ["/proj/pontoon.yml"],
      services: [
        {
          ...empty,
          name: "router",
          layers: ["base", "firewall"],
          kernel: "/proj/vm/build/vmlinuz",
          kernelArgs: ["svc.start=firewall"],
          memoryMiB: 160,
          cpus: 2,
          userNetwork: true,
          networks: [
            { network: "lan", ipv4Address: "10.0.0.1", masquerade: false },
            { network: "wan", ipv4Address: "10.0.1.1", masquerade: true },
          ],
          place: "pontoon.yml:17:3",
        },
        {
          ...empty,
          name: "webserver",
          layers: ["base", "nginx"],
          kernel: "/proj/vm/build/vmlinuz",
          kernelArgs: ["svc.start=nginx", "quiet"],
          memoryMiB: 256,
          cpus: 1,
          // Its way out is the router.
          userNetwork: false,
          networks: [{ network: "lan", ipv4Address: "10.0.0.80", gateway: "10.0.0.1", masquerade: false }],
          place: "pontoon.yml:32:3",
        },
      ],
      networks: [
        { name: "lan", driver: "private", subnet: "10.0.0.0/24", masquerade: false, internal: false, place: "pontoon.yml:8:3" },
        { name: "wan", driver: "private", subnet: "10.0.1.0/24", masquerade: false, internal: false, place: "pontoon.yml:10:3" },
        { name: "wire", driver: "link", masquerade: false, internal: true, place: "pontoon.yml:12:3" },
      ],
      volumes: [],
      layerPaths: [],
      warnings: [
        { message: "defaults.alpine: skiff builds layers on its Debian base; layer packages are installed with apt", place: "pontoon.yml:5:3" },
        {
          message: "memory below 160 MiB (service router): skiff's guest kernel needs at least 160 MiB; those VMs get 160 MiB",
          place: "pontoon.yml:18:13",
        },
      ],
      mcp: { tools: ["exec", "logs"], allow: { services: ["webserver"] } },
    });
  });

  it("takes a list of networks and no networks at all", () => {
    const p = load("networks: { lan: {} }\nservices:\n  a: { networks: [lan] }\n  b: {}\n");
    expect(p.services.map((s) => [s.networks, s.userNetwork, s.image])).toEqual([
      [[{ network: "lan", masquerade: false }], true, undefined],
      [[], true, undefined],
    ]);
    expect(p.mcp).toBeUndefined();
  });

  it.each([
    ["an unknown top-level key", "servics: {}\nservices: {}\n", "pontoon.yml:1:1", "unknown key"],
    ["an unknown service key", "services:\n  a:\n    image: debian\n", "pontoon.yml:3:5", "unknown key"],
    ["an unknown network key", "networks:\n  lan: { bridge: br0 }\nservices: {}\n", "pontoon.yml:2:10", "unknown key"],
    ["an unknown defaults key", "defaults: { memory: 1g }\nservices: {}\n", "pontoon.yml:1:13", "unknown key"],
    ["no services", "networks: {}\n", "pontoon.yml:1:1", "services"],
    ["layers not a list", "services:\n  a: { layers: base }\n", "pontoon.yml:2:16", "expected a list"],
    ["a bad memory size", "services:\n  a: { memory: lots }\n", "pontoon.yml:2:16", "not a size"],
    ["a bad CPU count", "services:\n  a: { cpus: 1.5 }\n", "pontoon.yml:2:14", "CPU count"],
    ["an undeclared network", "services:\n  a:\n    networks: { lan: {} }\n", "pontoon.yml:3:17", "network lan"],
    ["a bad address", "networks: { lan: {} }\nservices:\n  a:\n    networks: { lan: { ipv4_address: 10.0.0 } }\n", "pontoon.yml:4:38", "IPv4"],
    ["a bad gateway", "networks: { lan: {} }\nservices:\n  a:\n    networks: { lan: { gateway: x } }\n", "pontoon.yml:4:33", "IPv4"],
    ["a bad subnet", "networks:\n  lan: { subnet: 10.0.0.0/33 }\nservices: {}\n", "pontoon.yml:2:18", "subnet"],
    [
      "a link network with three VMs",
      "networks:\n  wire: { link: true }\nservices:\n  a: { networks: [wire] }\n  b: { networks: [wire] }\n  c: { networks: [wire] }\n",
      "pontoon.yml:2:3",
      "exactly two",
    ],
  ])("rejects %s with ERR_SKIFF_CONFIG at its place", (_, text, place, message) => {
    const err = errorOf(() => load(text));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toBe(place);
    expect(err.message + (err.hint ?? "")).toContain(message);
  });

  it("loads examples/pontoon/pontoon.yml cleanly, its project layers included", async () => {
    const dir = resolve("examples/pontoon");
    const file = join(dir, "pontoon.yml");
    const p = pontoonToProject([parseYaml(readFileSync(file, "utf8"), file)], { dir, projectName: "pontoon", files: [file] });
    expect(p.warnings).toEqual([]);
    expect(p.services.map((s) => [s.name, s.layers, s.networks.map((n) => n.ipv4Address)])).toEqual([
      ["router", ["base", "firewall"], ["10.0.0.1", "10.0.1.1"]],
      ["webserver", ["base", "web"], ["10.0.0.80"]],
    ]);
    const layers = await loadLayers(["base", "firewall", "web"], [join(dir, "layers")]);
    expect(layers.map((l) => l.name)).toEqual(["base", "firewall", "web"]);
  });
});

/**
 * What `skiff config` refuses because `up` would refuse it later, or wait
 * forever: each class a table, each row a file and the place and words of
 * the error. Loaded as `skiff config` loads them (a loader, then
 * validateProject), in a directory of their own where a host path matters.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composeToProject } from "../../src/config/compose.js";
import type { LoaderContext } from "../../src/config/context.js";
import { loadProject } from "../../src/config/load.js";
import { pontoonToProject } from "../../src/config/pontoon.js";
import { skiffToProject } from "../../src/config/skiff-file.js";
import { validateProject } from "../../src/config/validate.js";
import { vmfileToProject } from "../../src/config/vmfile.js";
import { parseYaml } from "../../src/config/yaml-doc.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { errorOf, rejectionOf } from "./fixtures/errors.js";

const root = mkdtempSync(join(tmpdir(), "skiff-validate-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(join(root, "site"));
writeFileSync(join(root, "nginx.conf"), "events {}\n");
mkdirSync(join(root, "layers", "dante"), { recursive: true });
writeFileSync(join(root, "layers", "dante", "layer.yml"), "packages: [dante-server]\n");

const ctx = (file: string): LoaderContext => ({ dir: root, projectName: "demo", files: [join(root, file)], env: { HOME: root } });
const loaders = {
  compose: (text: string) => composeToProject([parseYaml(text, "compose.yaml")], ctx("compose.yaml")),
  skiff: (text: string) => skiffToProject([parseYaml(text, "skiff.yml")], ctx("skiff.yml")),
  pontoon: (text: string) => pontoonToProject([parseYaml(text, "pontoon.yml")], ctx("pontoon.yml")),
  vmfile: (text: string) => vmfileToProject(text, "VMFile.kdl", ctx("VMFile.kdl")),
};
type Format = keyof typeof loaders;
/** What `skiff config` does with a file. */
const config = (format: Format, text: string): ProjectSpec => {
  const spec = loaders[format](text);
  validateProject(spec);
  return spec;
};

const binds = (n: number) => Array.from({ length: n }, (_, i) => `      - ./site:/srv/${i}`).join("\n");
const nets = (n: number) => Array.from({ length: n }, (_, i) => `n${i}`);

describe("validateProject: what up would refuse later", () => {
  it.each<[string, Format, string, string, RegExp, RegExp?]>([
    ["more mounts than a VM takes", "compose", `services:\n  web:\n    image: nginx\n    volumes:\n${binds(9)}\n`, "compose.yaml:2:3", /too many mounts: 9 \(at most 8\)/, /parent directory/],
    ["a single-file bind mount", "compose", "services:\n  web:\n    image: nginx\n    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n", "compose.yaml:5:9", /bind mount source is not a directory: .*nginx\.conf/, /share the directory that holds the file/],
    ["a single-file bind mount (long syntax)", "compose", "services:\n  web:\n    image: nginx\n    volumes:\n      - { type: bind, source: ./nginx.conf, target: /etc/nginx/nginx.conf }\n", "compose.yaml:5:9", /not a directory/],
    ["a single-file bind mount in skiff.yml", "skiff", "services:\n  web:\n    image: nginx\n    volumes: [./nginx.conf:/etc/nginx/nginx.conf]\n", "skiff.yml:4:15", /not a directory/],
    ["a mount over /proc", "compose", "services:\n  web:\n    image: nginx\n    volumes: [./site:/proc]\n", "compose.yaml:2:3", /a mount cannot be at \/proc/],
    ["two mounts at one target", "compose", "services:\n  web:\n    image: nginx\n    volumes: [./site:/srv, ./site:/srv/]\n", "compose.yaml:2:3", /two mounts at \/srv/],
    ["a service name with a space", "compose", 'services:\n  "my web":\n    image: nginx\n', "compose.yaml:2:3", /service my web: invalid service name "my web"/, /letters, digits/],
    ["a non-ASCII service name", "compose", "services:\n  café:\n    image: nginx\n", "compose.yaml:2:3", /invalid service name "café"/],
    ["an empty service name", "compose", 'services:\n  "":\n    image: nginx\n', "compose.yaml:2:3", /invalid service name ""/],
    ["a network name with a space", "compose", 'services:\n  web: { image: nginx, networks: ["front end"] }\nnetworks:\n  "front end": {}\n', "compose.yaml:4:3", /network front end: invalid network name "front end"/],
    ["a non-ASCII volume name", "compose", "services:\n  web: { image: nginx, volumes: ['données:/data'] }\nvolumes:\n  données: {}\n", "compose.yaml:4:3", /volume données: invalid volume name "données"/],
    ["a pontoon service name with a space", "pontoon", 'services:\n  "my router": { layers: [base] }\n', "pontoon.yml:2:3", /invalid service name "my router"/],
    ["a service name too long for its VM's name", "compose", `services:\n  ${"s".repeat(125)}:\n    image: nginx\n`, "compose.yaml:2:3", /invalid VM name "demo-s{125}-1"/, /1 to 128/],
    ["a pontoon network name that is not ASCII", "pontoon", "networks:\n  réseau: {}\nservices:\n  a: { networks: [réseau] }\n", "pontoon.yml:2:3", /invalid network name "réseau"/],
    ["an address outside its subnet (pontoon)", "pontoon", "networks:\n  lan: { subnet: 10.0.0.0/24 }\nservices:\n  web:\n    networks:\n      lan: { ipv4_address: 10.0.1.80 }\n", "pontoon.yml:4:3", /10\.0\.1\.80 is not a host address of network lan \(10\.0\.0\.0\/24\)/, /inside 10\.0\.0\.0\/24/],
    ["a gateway outside its subnet (pontoon)", "pontoon", "networks:\n  lan: { subnet: 10.0.0.0/24 }\nservices:\n  web:\n    networks:\n      lan: { ipv4_address: 10.0.0.80, gateway: 10.9.0.1 }\n", "pontoon.yml:4:3", /gateway 10\.9\.0\.1 is not on network lan/],
    ["the network's own address (compose)", "compose", "services:\n  web:\n    image: nginx\n    networks:\n      lan: { ipv4_address: 10.5.0.0 }\nnetworks:\n  lan:\n    ipam: { config: [{ subnet: 10.5.0.0/24 }] }\n", "compose.yaml:2:3", /10\.5\.0\.0 is not a host address/],
    ["a network's gateway outside its subnet (compose)", "compose", "services:\n  web: { image: nginx, networks: [lan] }\nnetworks:\n  lan:\n    ipam: { config: [{ subnet: 10.5.0.0/24, gateway: 10.6.0.1 }] }\n", "compose.yaml:4:3", /network lan: gateway 10\.6\.0\.1 is not a host address of 10\.5\.0\.0\/24/, /inside the subnet/],
    ["a VMFile tap network on a cloud VM", "vmfile", 'vm "db" {\n    image-url "https://example.com/db.qcow2"\n    network "tap" {\n        bridge "br0"\n    }\n}\n', "VMFile.kdl:3:5", /cloud images cannot join named networks yet/],
    ["more NICs than skiff-init takes", "compose", `services:\n  web: { image: nginx, networks: [${nets(16).join(", ")}] }\nnetworks: { ${nets(16).map((n) => `${n}: {}`).join(", ")} }\n`, "compose.yaml:2:3", /service web: too many networks: 17 NICs/, /at most 16 nics/],
    ["a command with more arguments than the guest takes", "compose", `services:\n  web: { image: nginx, command: [${Array(1023).fill("a").join(", ")}] }\n`, "compose.yaml:2:3", /too many arguments in the VM's command: 1023/, /at most 1022 arguments/],
    ["a command too long for the guest", "compose", `services:\n  web: { image: nginx, command: [echo, ${"x".repeat(9000)}] }\n`, "compose.yaml:2:3", /too long as the VM's command/, /stdin/],
    ["a cloud VM with a volume (skiff.yml)", "skiff", "services:\n  db:\n    image-url: https://example.com/db.qcow2\n    volumes: [./site:/srv]\n", "skiff.yml:2:3", /cloud images cannot have volumes/],
  ])("%s", (_what, format, text, place, message, hint) => {
    const err = errorOf(() => config(format, text));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", place]);
    expect(err.message).toMatch(message);
    if (hint !== undefined) expect(err.hint).toMatch(hint);
  });

  it.each<[string, string]>([
    ["a project name with a space", "my project"],
    ["a non-ASCII project name", "café"],
    ["an empty project name", ""],
  ])("refuses %s at its place", async (_what, name) => {
    const dir = mkdtempSync(join(root, "named-"));
    writeFileSync(join(dir, "compose.yaml"), `name: ${JSON.stringify(name)}\nservices:\n  web: { image: nginx }\n`);
    const err = await rejectionOf(loadProject({ cwd: dir }));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", "compose.yaml:1:7"]);
    expect(err.message).toBe(`invalid project name ${JSON.stringify(name)}`);
  });

  it("leaves a bind source it cannot see now (missing, or under a file) to up", () => {
    expect(config("compose", "services:\n  web:\n    image: nginx\n    volumes: [./later:/a, ./nginx.conf/x:/b]\n").services[0]!.volumes.map((v) => v.target)).toEqual(["/a", "/b"]);
  });

  it("takes eight mounts, a directory bind, a missing directory (up makes no guess) and an address inside its subnet", () => {
    expect(config("compose", `services:\n  web:\n    image: nginx\n    volumes:\n${binds(8)}\n      - ./later:/later\n`.replace("      - ./site:/srv/7\n", "")).services[0]!.volumes).toHaveLength(8);
    expect(config("pontoon", "networks:\n  lan: { subnet: 10.0.0.0/24 }\nservices:\n  web:\n    networks:\n      lan: { ipv4_address: 10.0.0.80, gateway: 10.0.0.1 }\n").services[0]!.networks).toEqual([
      { network: "lan", ipv4Address: "10.0.0.80", gateway: "10.0.0.1", masquerade: false },
    ]);
  });

  it.each<[string, string, string, RegExp]>([
    ["squid", "services:\n  proxy:\n    layers: [base, squid]\n", "pontoon.yml:3:20", /use skiff's http-proxy \(tinyproxy on port 8888; pontoon's squid listens on 3128\)/],
    ["dante, with no layer of the project's own", "services:\n  proxy:\n    layers:\n      - dante\n", "pontoon.yml:4:9", /use skiff's socks-proxy/],
  ])("refuses pontoon's %s layer with skiff's name for it", (_what, text, place, hint) => {
    // The project's layers/dante is only seen with the project's directory; a file elsewhere has none.
    const err = errorOf(() => validateProject(pontoonToProject([parseYaml(text, "pontoon.yml")], { ...ctx("pontoon.yml"), dir: join(root, "site") })));
    expect([err.code, err.place, err.message]).toEqual(["ERR_SKIFF_CONFIG", place, expect.stringMatching(/is pontoon's; skiff's library has no layer of that name/)]);
    expect(err.hint).toMatch(hint);
  });

  it("takes a dante layer the project has itself", () => {
    expect(config("pontoon", "services:\n  proxy: { layers: [dante] }\n").services[0]!.layers).toEqual(["dante"]);
  });

  it("reports every problem at once, in file order", () => {
    const err = errorOf(() => config("compose", 'services:\n  "a b": { image: x }\n  web:\n    image: nginx\n    volumes: [./nginx.conf:/etc/nginx.conf]\n'));
    expect((err.details as { problems: { place: string }[] }).problems.map((p) => p.place)).toEqual(["compose.yaml:2:3", "compose.yaml:5:15"]);
  });
});

describe("validateProject: dependencies up could never meet", () => {
  it.each<[string, Format, string, string, RegExp, RegExp]>([
    [
      "service_healthy on a service with no healthcheck",
      "compose",
      "services:\n  web:\n    image: nginx\n    depends_on:\n      db: { condition: service_healthy }\n  db:\n    image: postgres\n",
      "compose.yaml:5:7",
      /web waits for db to be healthy, but db has no healthcheck/,
      /give db a healthcheck, or use condition: service_started/,
    ],
    [
      "service_healthy on a service whose healthcheck is disabled",
      "compose",
      "services:\n  web:\n    image: nginx\n    depends_on: { db: { condition: service_healthy } }\n  db:\n    image: postgres\n    healthcheck: { disable: true }\n",
      "compose.yaml:4:19",
      /db has no healthcheck/,
      /healthcheck/,
    ],
    [
      "a cycle",
      "compose",
      "services:\n  a: { image: x, depends_on: [b] }\n  b: { image: x, depends_on: [c] }\n  c: { image: x, depends_on: [a] }\n",
      "compose.yaml:2:31",
      /in a cycle: a -> b -> c -> a/,
      /remove one of these depends_on entries/,
    ],
    [
      "a dependency a profile leaves out",
      "compose",
      "services:\n  web:\n    image: nginx\n    depends_on: [debug]\n  debug:\n    image: busybox\n    profiles: [debug]\n",
      "compose.yaml:4:18",
      /web depends on debug, which is not started with this project/,
      /COMPOSE_PROFILES/,
    ],
    [
      "service_healthy in skiff.yml",
      "skiff",
      "services:\n  web:\n    image: nginx\n    depends_on: { db: { condition: service_healthy } }\n  db:\n    image: postgres\n",
      "skiff.yml:4:19",
      /db has no healthcheck/,
      /healthcheck/,
    ],
  ])("%s", (_what, format, text, place, message, hint) => {
    const err = errorOf(() => config(format, text));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", place]);
    expect(err.message).toMatch(message);
    expect(err.hint).toMatch(hint);
  });

  it("takes service_healthy on a service with a healthcheck, and a profiled dependency when its profile is active", () => {
    expect(config("compose", "services:\n  web:\n    image: nginx\n    depends_on: { db: { condition: service_healthy } }\n  db:\n    image: postgres\n    healthcheck: { test: pg_isready }\n").services[0]!.dependsOn).toEqual([
      { service: "db", condition: "service_healthy" },
    ]);
    const spec = composeToProject([parseYaml("services:\n  web: { image: x, depends_on: [debug] }\n  debug: { image: y, profiles: [debug] }\n", "compose.yaml")], { ...ctx("compose.yaml"), env: { COMPOSE_PROFILES: "debug" } });
    expect(() => validateProject(spec)).not.toThrow();
  });
});

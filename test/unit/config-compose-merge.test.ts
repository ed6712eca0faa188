/**
 * Several compose files as one project (issue 14): the default override
 * file, the Compose Specification's merge rules for -f files (13-merge.md,
 * and compose-go's override tests), `extends` and top-level `include`
 * (05-services.md#extends, 14-include.md), with cycles refused at their place.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composeMerge } from "../../src/config/compose-merge.js";
import { loadProject } from "../../src/config/load.js";
import { rejectionOf } from "./fixtures/errors.js";

const root = mkdtempSync(join(tmpdir(), "skiff-compose-merge-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A fresh directory holding `files` (paths may have directories). */
function tree(files: Record<string, string>): string {
  const dir = join(root, `p${n++}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe("the Compose Specification's merge rules", () => {
  const svc = (v: unknown) => ({ services: { foo: v } });
  const merged = (a: unknown, b: unknown) => (composeMerge(svc(a), svc(b)) as { services: { foo: unknown } }).services.foo;
  it.each([
    // 13-merge.md "Mapping"
    ["mappings merge", { key1: "value1", key2: "value2" }, { key2: "VALUE", key3: "value3" }, { key1: "value1", key2: "VALUE", key3: "value3" }],
    // 13-merge.md "Sequence"
    ["sequences append", { dns: ["1.1.1.1"] }, { dns: ["8.8.8.8"] }, { dns: ["1.1.1.1", "8.8.8.8"] }],
    ["dns is unique", { dns: ["1.1.1.1"] }, { dns: ["1.1.1.1", "8.8.8.8"] }, { dns: ["1.1.1.1", "8.8.8.8"] }],
    // 13-merge.md "Shell commands"
    ["command is replaced", { command: ["echo", "foo"] }, { command: ["echo", "bar"] }, { command: ["echo", "bar"] }],
    ["entrypoint is replaced", { entrypoint: ["a"] }, { entrypoint: "b" }, { entrypoint: "b" }],
    ["healthcheck.test is replaced", { healthcheck: { test: ["CMD", "a"], retries: 1 } }, { healthcheck: { test: ["CMD", "b"] } }, { healthcheck: { test: ["CMD", "b"], retries: 1 } }],
    // 13-merge.md "Unique resources": ports, volumes
    [
      "ports unique by host ip, published, target and protocol",
      { ports: ["8080:80", "9000:9000/udp"] },
      { ports: [{ target: 80, published: "8080" }, "8443:443", "9000:9000"] },
      { ports: [{ target: 80, published: "8080" }, "9000:9000/udp", "8443:443", "9000:9000"] },
    ],
    ["volumes unique by target", { volumes: ["./a:/data", "/x:/x"] }, { volumes: ["./b:/data:ro", "cache:/c"] }, { volumes: ["./b:/data:ro", "/x:/x", "cache:/c"] }],
    ["long volumes unique by target", { volumes: [{ type: "bind", source: "./a", target: "/d" }] }, { volumes: ["./b:/d"] }, { volumes: ["./b:/d"] }],
    ["expose unique", { expose: ["80", 81] }, { expose: ["80", "82"] }, { expose: ["80", 81, "82"] }],
    ["env_file unique by path", { env_file: ["a.env"] }, { env_file: [{ path: "a.env", required: false }, "b.env"] }, { env_file: [{ path: "a.env", required: false }, "b.env"] }],
    ["cap_add unique", { cap_add: ["NET_ADMIN"] }, { cap_add: ["NET_ADMIN", "SYS_ADMIN"] }, { cap_add: ["NET_ADMIN", "SYS_ADMIN"] }],
    ["tmpfs, dns_search, extra_hosts append", { tmpfs: ["/t"], dns_search: ["a"], extra_hosts: ["a:1.1.1.1"] }, { tmpfs: ["/u"], dns_search: ["b"], extra_hosts: ["b:2.2.2.2"] }, { tmpfs: ["/t", "/u"], dns_search: ["a", "b"], extra_hosts: ["a:1.1.1.1", "b:2.2.2.2"] }],
    // compose-go override tests: environment and labels merge as maps whatever their form.
    ["environment list over map", { environment: { A: "1", B: "2" } }, { environment: ["B=3", "C"] }, { environment: { A: "1", B: "3", C: null } }],
    ["labels map over list", { labels: ["a=1"] }, { labels: { b: "2" } }, { labels: { a: "1", b: "2" } }],
    ["depends_on list and map", { depends_on: ["db"] }, { depends_on: { cache: { condition: "service_started" } } }, { depends_on: { db: { condition: "service_started" }, cache: { condition: "service_started" } } }],
    ["networks list and map", { networks: ["front"] }, { networks: { front: { ipv4_address: "10.0.0.2" }, back: null } }, { networks: { front: { ipv4_address: "10.0.0.2" }, back: null } }],
    ["scalars replaced", { image: "a", restart: "always" }, { image: "b" }, { image: "b", restart: "always" }],
    ["build string and map", { build: "." }, { build: { dockerfile: "D" } }, { build: { context: ".", dockerfile: "D" } }],
  ])("%s", (_, a, b, want) => expect(merged(a, b)).toEqual(want));
});

describe("the merge tags !reset and !override", () => {
  const base = "services:\n  app:\n    image: myapp\n    ports: ['8080:80']\n    environment: { A: '1', B: '2' }\n    hostname: h\n";
  it.each([
    // 13-merge.md "Reset value" and "Replace value".
    ["ports: !reset []", { ports: [], environment: { A: "1", B: "2" }, hostname: "h" }],
    ["ports: !override ['8443:443']", { ports: [{ guestPort: 443 }] }],
    ["environment: !override { C: '3' }", { environment: { C: "3" } }],
    ["environment: !reset {}\n    hostname: !reset null", { environment: {} }],
  ])("applies %s", async (line, want) => {
    const dir = tree({ "compose.yaml": base, "compose.override.yaml": `services:\n  app:\n    ${line}\n` });
    const s = (await loadProject({ cwd: dir, env: {} })).services[0]!;
    expect(s).toMatchObject(want);
    if (line.includes("hostname")) expect(s.hostname).toBeUndefined();
  });
});

describe("places in merged lists", () => {
  it.each([
    ["an earlier file's item", { "compose.yaml": "services:\n  a:\n    image: base\n    ports: ['99999:80']\n", "compose.override.yaml": "services:\n  a:\n    ports: ['81:81']\n" }, "compose.yaml:4:13"],
    ["a later file's item", { "compose.yaml": "services:\n  a:\n    image: base\n    ports: ['80:80']\n", "compose.override.yaml": "services:\n  a:\n    ports: ['1:1', '99999:81']\n" }, "compose.override.yaml:3:20"],
    ["an extended service's item", { "compose.yaml": "services:\n  b:\n    image: base\n    ports: ['99999:80']\n  a:\n    extends: b\n    ports: ['81:81']\n" }, "compose.yaml:4:13"],
  ])("are those of %s", async (_, files, place) => {
    expect((await rejectionOf(loadProject({ cwd: tree(files), env: {} }))).place).toBe(place);
  });
});

describe("the default override file", () => {
  it.each([
    ["docker-compose.yml", "docker-compose.override.yml"],
    ["compose.yaml", "compose.override.yaml"],
    ["compose.yaml", "docker-compose.override.yml"],
    ["docker-compose.yaml", "compose.override.yml"],
  ])("reads %s with %s next to it", async (main, override) => {
    const dir = tree({
      [main]: "services:\n  web:\n    image: nginx\n    ports: ['80:80']\n    environment: [A=1]\n",
      [override]: "services:\n  web:\n    ports: ['8443:443']\n    environment: { B: '2' }\n    restart: bogus\n",
    });
    const err = await rejectionOf(loadProject({ cwd: dir, env: {} }));
    expect(err.place).toBe(`${override}:5:14`);
    writeFileSync(join(dir, override), "services:\n  web:\n    ports: ['8443:443']\n    environment: { B: '2' }\n");
    const p = await loadProject({ cwd: dir, env: {} });
    expect(p.files).toEqual([join(dir, main), join(dir, override)]);
    expect(p.services[0]).toMatchObject({ environment: { A: "1", B: "2" }, ports: [{ guestPort: 80 }, { guestPort: 443 }] });
  });

  it("is not read when files are given with -f", async () => {
    const dir = tree({ "compose.yaml": "services:\n  web:\n    image: nginx\n", "compose.override.yaml": "services:\n  web:\n    image: other\n" });
    expect((await loadProject({ cwd: dir, env: {}, files: ["compose.yaml"] })).services[0]!.image).toBe("nginx");
    expect((await loadProject({ cwd: dir, env: {} })).services[0]!.image).toBe("other");
  });
});

describe("extends", () => {
  it.each([
    // 05-services.md#extends: a service of the same file, and of another file.
    ["the same file (string form)", { "compose.yaml": "services:\n  base:\n    image: base\n    environment: [A=1]\n  web:\n    extends: base\n    environment: [B=2]\n" }, { image: "base", environment: { A: "1", B: "2" } }],
    [
      "another file, with its relative paths",
      {
        "compose.yaml": "services:\n  web:\n    extends: { file: common/services.yml, service: webapp }\n    command: [run]\n",
        "common/services.yml": "services:\n  webapp:\n    image: app\n    command: [serve]\n    env_file: app.env\n    volumes: ['./data:/data']\n",
        "common/app.env": "FROM_FILE=yes\n",
      },
      { image: "app", command: ["run"], environment: { FROM_FILE: "yes" } },
    ],
    ["a chain", { "compose.yaml": "services:\n  a:\n    image: a\n    hostname: a\n  b:\n    extends: a\n    hostname: b\n  c:\n    extends: { service: b }\n    user: c\n" }, { image: "a", hostname: "b", user: "c" }],
  ])("from %s", (_, files, want) => {
    return loadProject({ cwd: tree(files), env: {} }).then((p) => expect(p.services[p.services.length - 1]).toMatchObject(want));
  });

  it("resolves bind sources of another directory against it", async () => {
    const dir = tree({
      "compose.yaml": "services:\n  web:\n    extends: { file: common/services.yml, service: webapp }\n",
      "common/services.yml": "services:\n  webapp:\n    image: app\n    volumes: ['./data:/data']\n",
    });
    const p = await loadProject({ cwd: dir, env: {} });
    expect(p.services[0]!.volumes).toEqual([{ kind: "bind", source: join(dir, "common", "data"), target: "/data", readOnly: false }]);
  });

  it.each([
    ["itself", { "compose.yaml": "services:\n  a:\n    image: a\n    extends: a\n" }, "compose.yaml:4:5", "extends cycle: a -> a"],
    ["a cycle of two", { "compose.yaml": "services:\n  a:\n    extends: b\n  b:\n    extends: a\n" }, "compose.yaml:5:5", "extends cycle"],
    ["a cycle through files", { "compose.yaml": "services:\n  a:\n    extends: { file: o.yml, service: b }\n", "o.yml": "services:\n  b:\n    extends: { file: compose.yaml, service: a }\n" }, "o.yml:3:5", "extends cycle"],
    ["a missing file", { "compose.yaml": "services:\n  a:\n    extends: { file: none.yml, service: b }\n" }, "compose.yaml:3:5", "is not a file"],
    ["a bad form", { "compose.yaml": "services:\n  a:\n    extends: [b]\n" }, "compose.yaml:3:5", "expected a service name"],
  ])("refuses %s at its place", async (_, files, place, message) => {
    const err = await rejectionOf(loadProject({ cwd: tree(files), env: {} }));
    expect([err.code, err.place, err.message]).toEqual(["ERR_SKIFF_CONFIG", place, expect.stringContaining(message)]);
    expect(err.hint).toBeDefined();
  });
});

describe("include", () => {
  it.each([
    // 14-include.md: the short syntax, and the long one with project_directory and env_file.
    ["a path", "include: sub/compose.yaml\n", { "sub/.env": "TAG=7\n" }],
    ["a list", "include:\n  - sub/compose.yaml\n", { "sub/.env": "TAG=7\n" }],
    ["the long syntax", "include:\n  - path: [sub/compose.yaml]\n    env_file: vars.env\n    project_directory: sub\n", { "vars.env": "TAG=7\n" }],
  ])("reads %s, with the included file's own variables and directory", async (_, head, extra) => {
    const dir = tree({
      "compose.yaml": `${head}services:\n  web:\n    image: nginx\n    depends_on: [db]\n`,
      "sub/compose.yaml": "services:\n  db:\n    image: postgres:${TAG}\n    volumes: ['./pg:/var/lib/postgresql']\n",
      ...extra,
    });
    const p = await loadProject({ cwd: dir, env: {} });
    expect(p.services.map((s) => [s.name, s.image])).toEqual([["db", "postgres:7"], ["web", "nginx"]]);
    expect(p.services[0]!.volumes).toEqual([{ kind: "bind", source: join(dir, "sub", "pg"), target: "/var/lib/postgresql", readOnly: false }]);
  });

  it.each([
    ["a cycle", { "compose.yaml": "include: [a.yml]\nservices: {}\n", "a.yml": "include: [compose.yaml]\nservices: {}\n" }, "a.yml:1:11", "include cycle"],
    ["a file including itself", { "compose.yaml": "include: [compose.yaml]\n" }, "compose.yaml:1:11", "include cycle"],
    ["a redefined service", { "compose.yaml": "include: [a.yml]\nservices:\n  db:\n    image: other\n", "a.yml": "services:\n  db:\n    image: postgres\n" }, "compose.yaml:3:3", "defined both"],
    ["a bad entry", { "compose.yaml": "include: [{ file: a.yml }]\n" }, "compose.yaml:1:11", "expected a path"],
  ])("refuses %s at its place", async (_, files, place, message) => {
    const err = await rejectionOf(loadProject({ cwd: tree(files), env: {} }));
    expect([err.code, err.place, err.message]).toEqual(["ERR_SKIFF_CONFIG", place, expect.stringContaining(message)]);
  });

  it("still reports an error inside an included file at its place there", async () => {
    const dir = tree({ "compose.yaml": "include: [sub/db.yml]\n", "sub/db.yml": "services:\n  db:\n    image: postgres\n    restart: sometimes\n" });
    const err = await rejectionOf(loadProject({ cwd: dir, env: {} }));
    expect(err.place).toBe("sub/db.yml:4:14");
  });
});

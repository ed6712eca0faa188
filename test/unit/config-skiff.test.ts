import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf as failure, rejectionOf } from "./fixtures/errors.js";
import { loadProject } from "../../src/config/load.js";
import { validateProject } from "../../src/config/validate.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { skiffToProject } from "../../src/config/skiff-file.js";
import { parseYaml } from "../../src/config/yaml-doc.js";
import { skiffJsonSchema } from "../../src/config/json-schema.js";
import { renderProject } from "../../src/config/render.js";
import { splitShellWords } from "../../src/config/shell-words.js";

const dir = "/proj";
const env = { HOME: "/home/u", FROM_HOST: "hostvalue" };

/** As `skiff config` reads a file: the loader, then the checks every format shares. */
function load(text: string): ProjectSpec {
  const spec = skiffToProject([parseYaml(text, "skiff.yml")], { dir, projectName: "proj", files: [`${dir}/skiff.yml`], env });
  validateProject(spec);
  return spec;
}

const full = `
version: "1"
name: shop
defaults:
  memory: 512m
  environment: { TZ: UTC }
  restart: always
services:
  db:
    image: docker.io/library/postgres:16
    kernel: ./kernels/vmlinux
    kernel_args: { quiet: null, loglevel: 3 }
    memory: 1024
    cpus: 2
    hostname: db
    environment: [POSTGRES_PASSWORD=secret, FROM_HOST, NOT_SET]
    command: postgres -c "shared_buffers=64MB" -c 'log_min_messages=info'
    entrypoint: [docker-entrypoint.sh]
    user: postgres
    working_dir: /var/lib/postgresql
    networks:
      back: { ipv4_address: 10.90.0.5 }
    dns: 10.90.0.1
    volumes:
      - dbdata:/var/lib/postgresql/data
      - { type: bind, source: ~/backups, target: /backups, read_only: true }
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 1m30s
      timeout: 500ms
      retries: 5
      start_period: 10
  cache:
    layers: [base, redis]
    kernel_args: [console=ttyS0]
    networks: [user, back]
    ports: ["6380:6379", 9000, "0.0.0.0:8125:8125/udp"]
    replicas: 2
    depends_on: [db]
  vm:
    image-url: https://cloud.example/debian-12.qcow2
    disk: 10g
    ssh: { user: debian }
    cloud-init: { user-data: ./seed.yml, hostname: cloudy }
    networks: none
    depends_on:
      db: { condition: service_healthy }
      cache:
    healthcheck: { test: "systemctl is-active ssh" }
    provision:
      - shell: { inline: "apt-get update" }
      - shell: { script: ./setup.sh }
      - file: { source: ./motd, destination: /etc/motd }
      - type: shell
        inline: echo flat
networks:
  back:
    subnet: 10.90.0.0/24
    gateway: 10.90.0.1
    masquerade: true
  edge:
    link: true
  pub:
    driver: bridge
    internal: true
volumes:
  dbdata: { size: 2g }
  scratch:
layers: [./my-layers, ../shared-layers]
`;

describe("skiff.yml → ProjectSpec", () => {
  it("translates a file using every key", () => {
    const fixed = full.replace("    networks: none\n", "    networks: [none]\n");
    const spec = load(fixed);
    const p = (line: number, col: number) => `skiff.yml:${line}:${col}`;
    expect(spec).toEqual({
      name: "proj",
      dir,
      format: "skiff",
      files: ["/proj/skiff.yml"],
      warnings: [],
      layerPaths: ["/proj/my-layers", "/shared-layers"],
      networks: [
        { name: "back", driver: "private", subnet: "10.90.0.0/24", gateway: "10.90.0.1", masquerade: true, internal: false, place: p(57, 3) },
        { name: "edge", driver: "link", masquerade: false, internal: false, place: p(61, 3) },
        { name: "pub", driver: "bridge", masquerade: false, internal: true, place: p(63, 3) },
      ],
      volumes: [
        { name: "dbdata", sizeBytes: 2 * 2 ** 30, place: p(67, 3) },
        { name: "scratch", sizeBytes: 2 ** 30, place: p(68, 3) },
      ],
      services: [
        {
          name: "db",
          image: "docker.io/library/postgres:16",
          layers: [],
          kernel: "/proj/kernels/vmlinux",
          kernelArgs: ["quiet", "loglevel=3"],
          memoryMiB: 1024,
          cpus: 2,
          hostname: "db",
          // A list replaces the defaults' map (lists are never merged).
          environment: { POSTGRES_PASSWORD: "secret", FROM_HOST: "hostvalue" },
          command: ["postgres", "-c", "shared_buffers=64MB", "-c", "log_min_messages=info"],
          entrypoint: ["docker-entrypoint.sh"],
          user: "postgres",
          workingDir: "/var/lib/postgresql",
          userNetwork: false,
          networks: [{ network: "back", ipv4Address: "10.90.0.5", masquerade: false }],
          ports: [],
          dns: ["10.90.0.1"],
          volumes: [
            { kind: "volume", volume: "dbdata", target: "/var/lib/postgresql/data", readOnly: false },
            { kind: "bind", source: "/home/u/backups", target: "/backups", readOnly: true },
          ],
          dependsOn: [],
          healthcheck: { test: ["sh", "-c", "pg_isready -U postgres"], intervalMs: 90_000, timeoutMs: 500, retries: 5, startPeriodMs: 10_000 },
          restart: "always",
          replicas: 1,
          provision: [],
          place: p(9, 3),
        },
        {
          name: "cache",
          image: "debian",
          layers: ["base", "redis"],
          kernelArgs: ["console=ttyS0"],
          memoryMiB: 512,
          environment: { TZ: "UTC" },
          userNetwork: true,
          networks: [{ network: "back", masquerade: false }],
          ports: [
            { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 6380, guestPort: 6379 },
            { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 0, guestPort: 9000 },
            { protocol: "udp", hostAddress: "0.0.0.0", hostPort: 8125, guestPort: 8125 },
          ],
          dns: [],
          volumes: [],
          dependsOn: [{ service: "db", condition: "service_started" }],
          restart: "always",
          replicas: 2,
          provision: [],
          place: p(33, 3),
        },
        {
          name: "vm",
          imageUrl: "https://cloud.example/debian-12.qcow2",
          layers: [],
          kernelArgs: [],
          memoryMiB: 512,
          diskBytes: 10 * 2 ** 30,
          environment: { TZ: "UTC" },
          userNetwork: false,
          networks: [],
          ports: [],
          dns: [],
          volumes: [],
          dependsOn: [
            { service: "db", condition: "service_healthy" },
            { service: "cache", condition: "service_started" },
          ],
          healthcheck: { test: ["sh", "-c", "systemctl is-active ssh"], intervalMs: 10_000, timeoutMs: 10_000, retries: 3, startPeriodMs: 0 },
          restart: "always",
          replicas: 1,
          ssh: { user: "debian" },
          cloudInit: { userDataPath: "/proj/seed.yml", hostname: "cloudy" },
          provision: [
            { kind: "shell", inline: "apt-get update", place: p(51, 9) },
            { kind: "shell", script: "/proj/setup.sh", place: p(52, 9) },
            { kind: "file", source: "/proj/motd", destination: "/etc/motd", place: p(53, 9) },
            { kind: "shell", inline: "echo flat", place: p(54, 9) },
          ],
          place: p(40, 3),
        },
      ],
    });
    expect(JSON.parse(JSON.stringify(renderProject(spec)))).toEqual(renderProject(spec));
    expect(JSON.stringify(renderProject(spec))).not.toContain("place");
  });

  it("applies defaults under every service; the service's own keys win, maps merge", () => {
    const spec = load(`
defaults: { image: alpine, memory: 300m, environment: { A: "1", B: "2" }, networks: [back] }
services:
  a: {}
  b: { memory: 1g, environment: { B: "3" }, networks: [user] }
  c: { image-url: ./disk.qcow2, networks: [user] }
networks: { back: }
`);
    const [a, b, c] = spec.services;
    expect(a).toMatchObject({ image: "alpine", memoryMiB: 300, environment: { A: "1", B: "2" }, userNetwork: false, networks: [{ network: "back" }] });
    expect(b).toMatchObject({ image: "alpine", memoryMiB: 1024, environment: { A: "1", B: "3" }, userNetwork: true, networks: [] });
    // A service naming its own image source drops the defaults' image.
    expect(c).toMatchObject({ imageUrl: "./disk.qcow2", memoryMiB: 300 });
    expect(c!.image).toBeUndefined();
  });

  it("reports a bad value that came from defaults at the defaults' place", () => {
    const err = failure(() => load("defaults:\n  networks: [nowhere]\nservices:\n  a: { image: x }\n"));
    expect(err.place).toBe("skiff.yml:2:14");
  });

  it("collects every problem, in file order", () => {
    const err = failure(() => load("services:\n  a:\n    image: x\n    memory: lots\n    cpus: 0\n    bogus: 1\n"));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toBe("skiff.yml:4:13");
    expect(err.hint).toMatch(/256m/);
    expect((err.details?.["problems"] as unknown[]).length).toBe(3);
  });

  it("the example in examples/skiff loads", async () => {
    const { readFile } = await import("node:fs/promises");
    const file = path.resolve("examples/skiff/skiff.yml");
    const spec = skiffToProject([parseYaml(await readFile(file, "utf8"), "skiff.yml")], { dir: path.dirname(file), projectName: "webcache", files: [file] });
    expect(spec.services.map((s) => s.name)).toEqual(["cache", "web"]);
    expect(spec.services[1]!.dependsOn).toEqual([{ service: "cache", condition: "service_healthy" }]);
  });
});

const invalid: Array<[what: string, text: string, place: string, message?: RegExp]> = [
  ["unknown top-level key", "services: {}\nservise: {}\n", "skiff.yml:2:1", /unknown key "servise"/],
  ["unknown service key", "services:\n  a:\n    image: x\n    imgae: y\n", "skiff.yml:4:5", /services\.a: unknown key "imgae"/],
  ["bad memory", "services:\n  a: { image: x, memory: 12q }\n", "skiff.yml:2:26", /memory size/],
  ["too little memory", "services:\n  a: { image: x, memory: 63 }\n", "skiff.yml:2:26", /at least/],
  ["bad port", "services:\n  a:\n    image: x\n    ports: ['80:99999']\n", "skiff.yml:4:13", /not a port/],
  ["ports without user networking", "services:\n  a:\n    image: x\n    networks: [n]\n    ports: ['80:80']\nnetworks: { n: }\n", "skiff.yml:5:12", /user networking/],
  ["undeclared network", "services:\n  a:\n    image: x\n    networks: [front]\n", "skiff.yml:4:16", /network "front" is not declared/],
  ["undeclared network (map)", "services:\n  a:\n    image: x\n    networks:\n      front: { ipv4_address: 10.0.0.2 }\n", "skiff.yml:5:7", /not declared/],
  ["undeclared volume", "services:\n  a:\n    image: x\n    volumes: [data:/data]\n", "skiff.yml:4:15", /volume "data" is not declared/],
  ["bad volume mode", "services:\n  a:\n    image: x\n    volumes: ['./d:/data:rx']\n", "skiff.yml:4:15", /cannot read/],
  ["relative volume target", "services:\n  a:\n    image: x\n    volumes: ['./d:data']\n", "skiff.yml:4:15", /absolute/],
  ["depends_on unknown", "services:\n  a:\n    image: x\n    depends_on: [b]\n", "skiff.yml:4:18", /no service named "b"/],
  ["depends_on unknown (map)", "services:\n  a:\n    image: x\n    depends_on:\n      b: { condition: service_healthy }\n", "skiff.yml:5:7", /no service named "b"/],
  ["dependency cycle", "services:\n  a: { image: x, depends_on: [b] }\n  b: { image: x, depends_on: [c] }\n  c: { image: x, depends_on: [a] }\n", "skiff.yml:2:31", /a -> b -> c -> a/],
  ["bad condition", "services:\n  a: { image: x, depends_on: { b: { condition: up } } }\n  b: { image: x }\n", "skiff.yml:2:48", /service_started/],
  ["image and image-url", "services:\n  a:\n    image: x\n    image-url: http://h/d.img\n", "skiff.yml:4:5", /not both/],
  ["image-url and image_url", "services:\n  a:\n    image-url: http://h/d.img\n    image_url: http://h/d.img\n", "skiff.yml:4:5", /same key/],
  ["no image", "services:\n  a:\n    memory: 256m\n", "skiff.yml:2:3", /has no image/],
  ["layers on a cloud image", "services:\n  a:\n    image-url: ./d.img\n    layers: [base]\n", "skiff.yml:4:5", /cloud image/],
  ["replicas with ipv4_address", "services:\n  a:\n    image: x\n    replicas: 3\n    networks:\n      n: { ipv4_address: 10.1.0.5 }\nnetworks: { n: }\n", "skiff.yml:6:26", /replicas/],
  ["replicas zero", "services:\n  a: { image: x, replicas: 0 }\n", "skiff.yml:2:28"],
  ["address outside subnet", "services:\n  a:\n    image: x\n    networks:\n      n: { ipv4_address: 10.2.0.5 }\nnetworks:\n  n: { subnet: 10.1.0.0/24 }\n", "skiff.yml:5:26", /outside/],
  ["bad ip address", "services:\n  a:\n    image: x\n    networks:\n      n: { ipv4_address: 10.1.0.500 }\nnetworks: { n: }\n", "skiff.yml:5:26", /IPv4/],
  ["bad dns", "services:\n  a: { image: x, dns: [1.2.3] }\n", "skiff.yml:2:24", /IPv4/],
  ["bad subnet", "services: {}\nnetworks:\n  n: { subnet: 10.1.0.1/24 }\n", "skiff.yml:3:16", /host bits/],
  ["gateway without subnet", "services: {}\nnetworks:\n  n: { gateway: 10.1.0.1 }\n", "skiff.yml:3:17", /needs a subnet/],
  ["reserved network name", "services: {}\nnetworks:\n  user: {}\n", "skiff.yml:3:3", /network mode/],
  ["bad driver", "services: {}\nnetworks:\n  n: { driver: overlay }\n", "skiff.yml:3:16", /private/],
  ["bad duration", "services:\n  a:\n    image: x\n    healthcheck: { test: [CMD, 'true'], interval: 10 seconds }\n", "skiff.yml:4:51", /duration/],
  ["bad healthcheck test", "services:\n  a:\n    image: x\n    healthcheck: { test: [curl, -f, x] }\n", "skiff.yml:4:26", /CMD/],
  ["shell with inline and script", "services:\n  a:\n    image: x\n    provision:\n      - shell: { inline: ls, script: ./s.sh }\n", "skiff.yml:5:16", /exactly one of inline and script/],
  ["shell with neither", "services:\n  a:\n    image: x\n    provision:\n      - type: shell\n", "skiff.yml:5:9", /exactly one/],
  ["file step without destination", "services:\n  a:\n    image: x\n    provision:\n      - file: { source: ./x }\n", "skiff.yml:5:15", /destination/],
  ["bad restart", "services:\n  a: { image: x, restart: sometimes }\n", "skiff.yml:2:27", /unless-stopped/],
  ["bad service name", "services:\n  Web: { image: x }\n", "skiff.yml:2:3", /invalid service name/],
  ["bad hostname", "services:\n  a: { image: x, hostname: 'my_host' }\n", "skiff.yml:2:28", /hostname/],
  ["unterminated quote in command", "services:\n  a: { image: x, command: 'echo \"hi' }\n", "skiff.yml:2:27", /unterminated/],
  ["bad environment entry", "services:\n  a: { image: x, environment: ['1X=2'] }\n", "skiff.yml:2:32", /environment variable/],
  ["relative working_dir", "services:\n  a: { image: x, working_dir: app }\n", "skiff.yml:2:31", /absolute/],
  ["disk on a microVM", "services:\n  a: { image: x, disk: 10g }\n", "skiff.yml:2:18", /cloud images/],
  ["bad version", "version: 2\nservices: {}\n", "skiff.yml:1:10", /"1"/],
  ["services missing", "version: '1'\n", "skiff.yml:1:1", /services is missing \(a map\)/],
  ["not a map", "- a\n- b\n", "skiff.yml:1:1", /expected a map/],
  ["empty file", "", "skiff.yml", /expected a map/],
  ["YAML syntax error", "services:\n  a: [image\n", "skiff.yml:3:1", /not valid YAML/],
  ["duplicate key", "services:\n  a: { image: x }\n  a: { image: y }\n", "skiff.yml:3:3", /not valid YAML/],
  ["tab indentation", "services:\n\ta: {}\n", "skiff.yml:2:1", /not valid YAML/],
  ["bad layer name", "services:\n  a: { layers: ['../x'] }\n", "skiff.yml:2:17", /layer name/],
];

describe("invalid skiff.yml", () => {
  it.each(invalid)("%s", (_what, text, place, message) => {
    const err = failure(() => load(text));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toBe(place);
    expect(err.hint).toBeTruthy();
    if (message !== undefined) expect(err.message).toMatch(message);
  });
});

describe("shell words", () => {
  it.each([
    ["a b  c", ["a", "b", "c"]],
    [`echo "a b" 'c d' e\\ f`, ["echo", "a b", "c d", "e f"]],
    [`sh -c "echo \\"x\\" \\$HOME"`, ["sh", "-c", 'echo "x" $HOME']],
    [`''`, [""]],
    ["", []],
  ])("%s", (text, words) => expect(splitShellWords(text)).toEqual({ words }));
  it("refuses an unterminated quote", () => expect(splitShellWords("'x")).toHaveProperty("error"));
});

describe("JSON Schema", () => {
  it("is made from the zod schema, with $schema and a title, strict on keys", () => {
    const schema = skiffJsonSchema() as { $schema: string; title: string; additionalProperties: boolean; properties: Record<string, unknown> };
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.title).toBe("skiff.yml");
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(["version", "name", "defaults", "services", "networks", "volumes", "layers", "mcp"]);
    expect(JSON.stringify(schema)).toContain("ipv4_address");
  });
});

describe("loadProject: files, -f and the project name", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "skiff-load-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  async function write(rel: string, text: string): Promise<string> {
    const file = path.join(root, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
    return file;
  }

  it("finds skiff.yml above cwd; the project is named after its directory, lowercased to [a-z0-9_-]", async () => {
    await write("My.Shop App/skiff.yml", "services:\n  web: { image: nginx, volumes: ['./www:/www'] }\n");
    await mkdir(path.join(root, "My.Shop App", "sub"), { recursive: true });
    const spec = await loadProject({ cwd: path.join(root, "My.Shop App", "sub") });
    expect(spec).toMatchObject({ name: "myshopapp", format: "skiff", dir: path.join(root, "My.Shop App"), files: [path.join(root, "My.Shop App", "skiff.yml")] });
    expect(spec.services[0]!.volumes).toEqual([{ kind: "bind", source: path.join(root, "My.Shop App", "www"), target: "/www", readOnly: false }]);
  });

  it("-p wins over name:, which wins over the directory", async () => {
    await write("named/skiff.yml", "name: shop\nservices: {}\n");
    expect((await loadProject({ cwd: path.join(root, "named") })).name).toBe("shop");
    expect((await loadProject({ cwd: path.join(root, "named"), projectName: "other" })).name).toBe("other");
  });

  it("refuses an invalid -p or name:, and a directory name with nothing usable", async () => {
    expect((await rejectionOf(loadProject({ cwd: path.join(root, "named"), projectName: "Bad Name" }))).place).toBe("projectName");
    await write("badname/skiff.yml", "name: Not OK\nservices: {}\n");
    const err = await rejectionOf(loadProject({ cwd: path.join(root, "badname") }));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", "skiff.yml:1:7"]);
    await write("___/skiff.yml", "services: {}\n");
    expect((await rejectionOf(loadProject({ cwd: path.join(root, "___") }))).hint).toMatch(/give a project name/);
  });

  it("-f: later files override (maps merge, lists replace), paths resolve against the first file, errors name the file that wrote the value", async () => {
    await write("multi/skiff.yml", "services:\n  web:\n    image: nginx\n    memory: 256m\n    ports: ['8080:80']\n    environment: { A: '1' }\n");
    await write("multi/over/prod.yml", "services:\n  web:\n    memory: 1g\n    ports: ['80:80']\n    environment: { B: '2' }\n    volumes: ['./data:/data']\n");
    const spec = await loadProject({ cwd: path.join(root, "multi"), files: ["skiff.yml", "over/prod.yml"] });
    expect(spec.files).toEqual([path.join(root, "multi", "skiff.yml"), path.join(root, "multi", "over", "prod.yml")]);
    expect(spec.services[0]).toMatchObject({
      memoryMiB: 1024,
      environment: { A: "1", B: "2" },
      ports: [{ hostPort: 80, guestPort: 80 }],
      volumes: [{ kind: "bind", source: path.join(root, "multi", "data") }],
    });
    await write("multi/over/bad.yml", "services:\n  web:\n    memory: huge\n");
    const err = await rejectionOf(loadProject({ cwd: path.join(root, "multi"), files: ["skiff.yml", "over/bad.yml"] }));
    expect(err.place).toBe("over/bad.yml:3:13");
  });

  it("-f with a missing file, or files of two formats", async () => {
    expect((await rejectionOf(loadProject({ cwd: root, files: ["nope.yml"] }))).code).toBe("ERR_SKIFF_FILE_NOT_FOUND");
    await write("mix/compose.yaml", "services: {}\n");
    await write("mix/skiff.yml", "services: {}\n");
    expect((await rejectionOf(loadProject({ cwd: path.join(root, "mix"), files: ["skiff.yml", "compose.yaml"] }))).code).toBe("ERR_SKIFF_USAGE");
  });

  it("no project file anywhere up from cwd", async () => {
    await mkdir(path.join(root, "empty"), { recursive: true });
    expect((await rejectionOf(loadProject({ cwd: path.join(root, "empty") }))).code).toBe("ERR_SKIFF_PROJECT_NOT_FOUND");
  });
});

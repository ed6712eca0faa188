import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composeToProject } from "../../src/config/compose.js";
import { interpolate, parseDotenv } from "../../src/config/compose-text.js";
import { serviceBlanks } from "../../src/config/foreign.js";
import { parseYaml } from "../../src/config/yaml-doc.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { errorOf } from "./fixtures/errors.js";

const dir = mkdtempSync(join(tmpdir(), "skiff-compose-"));
const made = [dir];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
const ctx = { dir, projectName: "demo", files: [join(dir, "compose.yaml")] };
const load = (text: string, env: NodeJS.ProcessEnv = {}, file = "compose.yaml"): ProjectSpec =>
  composeToProject([parseYaml(text, file)], { ...ctx, env });

const base = { ...serviceBlanks(), userNetwork: true };

describe("composeToProject", () => {
  it("translates a web + db file to the whole ProjectSpec", () => {
    writeFileSync(join(dir, "web.env"), "# settings\nMODE=prod\nexport GREETING='hi $there'\nFROM_SHELL=${HOME_DIR}/x\n");
    const text = `version: "3.8"
services:
  web:
    image: nginx:1.27
    command: nginx -g 'daemon off;'
    entrypoint: ["/docker-entrypoint.sh"]
    env_file: web.env
    environment:
      - MODE=dev
      - TOKEN
    ports:
      - "8080:80"
      - 9000-9001:9000-9001/udp
      - target: 443
        published: "8443"
        host_ip: 0.0.0.0
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - type: volume
        source: data
        target: /data
    networks:
      front:
      back:
        ipv4_address: 10.5.0.10
    depends_on:
      db:
        condition: service_healthy
    healthcheck:
      test: curl -f http://localhost/
      interval: 10s
      timeout: 1s
      retries: 5
      start_period: 1m30s
    restart: always
    hostname: www
    user: "101"
    working_dir: /srv
    dns: 10.5.0.1
    deploy:
      replicas: 2
      resources:
        limits: { memory: 512M, cpus: "2" }
    labels: [tier=front]
  db:
    image: postgres:16
    mem_limit: 1g
    cpus: 1
    environment: { POSTGRES_PASSWORD: secret, PORT: 5432 }
    healthcheck:
      test: ["CMD-SHELL", "pg_isready", "-U", "postgres"]
    networks: [back]
networks:
  front: {}
  back:
    internal: true
    ipam:
      config:
        - subnet: 10.5.0.0/24
          gateway: 10.5.0.1
volumes:
  data:
`;
    const project = load(text, { TOKEN: "t0k", HOME_DIR: "/home/u" });
    expect(project).toEqual({
      name: "demo",
      dir,
      format: "compose",
      files: ctx.files,
      services: [
        {
          ...base,
          name: "web",
          image: "nginx:1.27",
          command: ["nginx", "-g", "daemon off;"],
          entrypoint: ["/docker-entrypoint.sh"],
          environment: { MODE: "dev", GREETING: "hi $there", FROM_SHELL: "/home/u/x", TOKEN: "t0k" },
          ports: [
            { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 },
            { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 9000, guestPort: 9000 },
            { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 9001, guestPort: 9001 },
            { protocol: "tcp", hostAddress: "0.0.0.0", hostPort: 8443, guestPort: 443 },
          ],
          volumes: [
            { kind: "bind", source: resolve(dir, "html"), target: "/usr/share/nginx/html", readOnly: true },
            { kind: "volume", volume: "data", target: "/data", readOnly: false },
          ],
          networks: [
            { network: "front", masquerade: false },
            { network: "back", ipv4Address: "10.5.0.10", masquerade: false },
          ],
          dependsOn: [{ service: "db", condition: "service_healthy" }],
          healthcheck: { test: ["sh", "-c", "curl -f http://localhost/"], intervalMs: 10_000, timeoutMs: 1000, retries: 5, startPeriodMs: 90_000 },
          restart: "always",
          hostname: "www",
          user: "101",
          workingDir: "/srv",
          dns: ["10.5.0.1"],
          replicas: 2,
          memoryMiB: 512,
          cpus: 2,
          labels: { tier: "front" },
          place: "compose.yaml:3:3",
        },
        {
          ...base,
          name: "db",
          image: "postgres:16",
          memoryMiB: 1024,
          cpus: 1,
          environment: { POSTGRES_PASSWORD: "secret", PORT: "5432" },
          healthcheck: { test: ["sh", "-c", "pg_isready -U postgres"], intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 },
          // Only on an internal network: no way out, as in compose.
          userNetwork: false,
          networks: [{ network: "back", masquerade: false }],
          place: "compose.yaml:45:3",
        },
      ],
      networks: [
        { name: "front", driver: "private", masquerade: false, internal: false, place: "compose.yaml:54:3" },
        { name: "back", driver: "private", subnet: "10.5.0.0/24", gateway: "10.5.0.1", masquerade: false, internal: true, place: "compose.yaml:55:3" },
      ],
      volumes: [{ name: "data", sizeBytes: 1024 ** 3, place: "compose.yaml:62:3" }],
      layerPaths: [],
      warnings: [],
    });
  });

  it("puts services without networks on a private `default` network", () => {
    const p = load("services:\n  a: { image: base }\n  b: { image: base, network_mode: host }\n");
    expect(p.networks).toEqual([{ name: "default", driver: "private", masquerade: false, internal: false, place: "compose.yaml:1:1" }]);
    expect(p.services.map((s) => s.networks)).toEqual([[{ network: "default", masquerade: false }], []]);
    expect(p.warnings).toEqual([{ message: "network_mode (service b): a VM has its own network stack; use networks", place: "compose.yaml:3:21" }]);
  });

  it("drops binds of the host's /proc, /sys and /dev with a warning (the guest has its own), keeping other binds", () => {
    const p = load("services:\n  c:\n    image: base\n    volumes: ['/sys:/sys:ro', '/dev/disk/:/dev/disk:ro', '/proc:/host/proc:ro', '/srv:/rootfs/srv:ro']\n");
    expect(p.services[0]!.volumes.map((v) => v.target)).toEqual(["/rootfs/srv"]);
    expect(p.warnings.map((w) => w.place)).toEqual(["compose.yaml:4:15", "compose.yaml:4:31", "compose.yaml:4:58"]);
    expect(p.warnings[0]!.message).toMatch(/volumes \/sys \(service c\): the host's \/proc, \/sys and \/dev are not shared/);
  });

  it("warns once per key per file, naming every service, and never drops a key silently", () => {
    const p = load(`services:
  a: { image: base, privileged: true, cap_add: [NET_ADMIN], container_name: x }
  b: { image: base, privileged: true, build: ., depends_on: { a: { condition: service_completed_successfully } } }
  c: { image: base, profiles: [debug] }
  d: { image: base, restart: "on-failure:3", cpus: 0.5, mem_limit: 64m, volumes: [/cache] }
x-common: &c { image: base }
secrets: { s: { file: ./s } }
`);
    expect(p.services.map((s) => s.name)).toEqual(["a", "b", "d"]);
    expect(p.services[1]!.dependsOn).toEqual([{ service: "a", condition: "service_started" }]);
    expect(p.services[2]).toMatchObject({ restart: "on-failure", cpus: 1, memoryMiB: 160, volumes: [] });
    expect(p.warnings.map((w) => [w.message.split(":")[0], w.place])).toEqual([
      ["secrets", "compose.yaml:7:1"],
      ["profiles (service c)", "compose.yaml:4:21"],
      ["privileged (services a, b)", "compose.yaml:2:21"],
      ["cap_add (service a)", "compose.yaml:2:39"],
      ["container_name (service a)", "compose.yaml:2:61"],
      ["build (service b)", "compose.yaml:3:39"],
      ["depends_on condition service_completed_successfully (service b)", "compose.yaml:3:63"],
      ["mem_limit below 160 MiB (service d)", "compose.yaml:5:68"],
      ["cpus (a fraction) (service d)", "compose.yaml:5:52"],
      ["anonymous volumes (service d)", "compose.yaml:5:83"],
      ["restart on-failure with a count (service d)", "compose.yaml:5:30"],
    ]);
    expect(p.warnings.find((w) => w.message.startsWith("build"))!.message).toContain("skiff does not run Dockerfiles; use layers");
  });

  it("starts services of active profiles (COMPOSE_PROFILES)", () => {
    expect(load("services:\n  c: { image: base, profiles: [debug] }\n", { COMPOSE_PROFILES: "debug" }).services.map((s) => s.name)).toEqual(["c"]);
  });

  it("interpolates from the shell over .env, with defaults and $$", () => {
    const d = mkdtempSync(join(tmpdir(), "skiff-compose-env-"));
    made.push(d);
    writeFileSync(join(d, ".env"), "TAG=from-dotenv\nPORT=8000\n");
    const p = composeToProject(
      [parseYaml('services:\n  a:\n    image: "app:${TAG}"\n    ports: ["${PORT}:80"]\n    command: echo $$HOME ${MISSING:-none} ${EMPTY:-e} ${EMPTY-kept}\n', "compose.yaml")],
      { ...ctx, dir: d, env: { PORT: "9000", EMPTY: "" } },
    );
    expect(p.services[0]).toMatchObject({ image: "app:from-dotenv", command: ["echo", "$HOME", "none", "e"], ports: [{ hostPort: 9000, guestPort: 80 }] });
  });

  it("merges -f files by the Compose Specification's rules, places from the file that wrote the value", () => {
    const a = parseYaml("services:\n  web:\n    image: base\n    ports: ['80:80']\n    environment: { A: '1', B: '2' }\n", "a.yml");
    const b = parseYaml("services:\n  web:\n    ports: ['81:81']\n    environment: { B: '3' }\n    restart: bogus\n", "b.yml");
    expect(errorOf(() => composeToProject([a, b], { ...ctx, env: {} })).place).toBe("b.yml:5:14");
    const c = parseYaml("services:\n  web:\n    ports: ['81:81']\n    environment: { B: '3' }\n", "c.yml");
    const p = composeToProject([a, c], { ...ctx, env: {} });
    expect(p.services[0]).toMatchObject({ environment: { A: "1", B: "3" }, ports: [{ hostPort: 80, guestPort: 80 }, { hostPort: 81, guestPort: 81 }], place: "c.yml:2:3" });
  });

  it.each([
    ["a typo in a service", "services:\n  a:\n    image: base\n    enviroment: {}\n", "compose.yaml:4:5", "unknown key"],
    ["a typo at the top", "services: {}\nnetwork: {}\n", "compose.yaml:2:1", "unknown key"],
    ["a wrong type", "services:\n  a:\n    image: base\n    ports: 80\n", "compose.yaml:4:12", "expected a list"],
    ["no image", "services:\n  a:\n    command: [sh]\n", "compose.yaml:2:3", "has no image"],
    ["an undeclared network", "services:\n  a:\n    image: base\n    networks: [nope]\n", "compose.yaml:4:16", "network nope"],
    ["an undeclared volume", "services:\n  a:\n    image: base\n    volumes: ['data:/d']\n", "compose.yaml:4:15", "volume data"],
    ["an unknown dependency", "services:\n  a:\n    image: base\n    depends_on: [b]\n", "compose.yaml:4:18", "depends on b"],
    ["a bad port", "services:\n  a:\n    image: base\n    ports: ['99999:80']\n", "compose.yaml:4:13", "not a port"],
    ["an IPv6 port address", "services:\n  a:\n    image: base\n    ports: ['[::1]:80:80']\n", "compose.yaml:4:13", "port forward"],
    ["a bad restart policy", "services:\n  a:\n    image: base\n    restart: sometimes\n", "compose.yaml:4:14", "restart policy"],
    ["a bad duration", "services:\n  a:\n    image: base\n    healthcheck: { test: [CMD, x], interval: soon }\n", "compose.yaml:4:46", "duration"],
    ["a bad healthcheck test", "services:\n  a:\n    image: base\n    healthcheck: { test: [x] }\n", "compose.yaml:4:26", "CMD, CMD-SHELL"],
    ["a bad subnet", "networks:\n  n:\n    ipam: { config: [{ subnet: 10.0.0.1/24 }] }\n", "compose.yaml:3:32", "host bits"],
    ["a bad static address", "services:\n  a:\n    image: base\n    networks: { n: { ipv4_address: 10.0.0 } }\nnetworks: { n: {} }\n", "compose.yaml:4:36", "IPv4"],
    ["a required variable", "services:\n  a:\n    image: ${IMG:?set IMG}\n", "compose.yaml:3:12", "IMG is missing a value: set IMG"],
    ["a bad interpolation", "services:\n  a:\n    image: ${IMG\n", "compose.yaml:3:12", "closing }"],
    ["a missing env_file", "services:\n  a:\n    image: base\n    env_file: nope.env\n", "compose.yaml:4:15", "does not exist"],
    ["a bad memory size", "services:\n  a:\n    image: base\n    mem_limit: lots\n", "compose.yaml:4:16", "not a size"],
    ["extends of a missing service", "services:\n  a:\n    image: base\n    extends: { service: b }\n", "compose.yaml:4:5", "extends b, which is not a service"],
    ["an include of a missing file", "include: [other.yml]\nservices: {}\n", "compose.yaml:1:11", "is not a file"],
    ["an unterminated quote in a command", "services:\n  a:\n    image: base\n    command: sh -c 'x\n", "compose.yaml:4:14", "unterminated"],
  ])("rejects %s with ERR_SKIFF_CONFIG at its place", (_, text, place, message) => {
    const err = errorOf(() => load(text));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toBe(place);
    expect(err.message).toContain(message);
  });

  it("loads examples/compose/docker-compose.yml cleanly", () => {
    const exampleDir = resolve("examples/compose");
    const file = join(exampleDir, "docker-compose.yml");
    const p = composeToProject([parseYaml(readFileSync(file, "utf8"), file)], { dir: exampleDir, projectName: "webapp", files: [file], env: {} });
    expect(p.warnings).toEqual([]);
    expect(p.services.map((s) => [s.name, s.image, s.networks[0]?.ipv4Address])).toEqual([
      ["web", "base", "10.89.0.10"],
      ["cache", "base", "10.89.0.11"],
    ]);
    expect(p.services[0]!.ports).toEqual([{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }]);
    expect(p.services[0]!.dependsOn).toEqual([{ service: "cache", condition: "service_healthy" }]);
  });
});

describe("compose text rules", () => {
  const env: Record<string, string> = { A: "a", E: "" };
  const run = (t: string) => interpolate(t, (k) => env[k], "f:1:1", () => {});
  it.each([
    ["$A ${A} $$A", "a a $A"],
    ["${B:-x} ${E:-x} ${E-x} ${A:+y} ${B:+y} ${B-${A}}", "x x  y  a"],
    ["cost: 5$", "cost: 5$"],
  ])("interpolates %j", (t, out) => expect(run(t)).toBe(out));

  it("reports unset variables", () => {
    const unset: string[] = [];
    interpolate("${X} $Y ${Z:-z}", () => undefined, "f", (n) => unset.push(n));
    expect(unset).toEqual(["X", "Y"]);
  });

  it("reads .env files", () => {
    expect(parseDotenv('A=1\n# c\nexport B="x\\ny ${A}"\nC=\'$A\'\nD=plain # comment\nE\n', ".env")).toEqual({ A: "1", B: "x\ny 1", C: "$A", D: "plain" });
    expect(errorOf(() => parseDotenv("A=1\n=x\n", ".env")).place).toBe(".env:2:1");
  });
});

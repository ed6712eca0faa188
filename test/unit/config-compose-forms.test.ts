/**
 * Compose file forms real files use (issue 14): .env directories, YAML merge
 * keys, interpolated values cast to their field's type, environment names
 * with dots, nested x- extensions, Go durations, multi-line .env values.
 * Cases are from compose-go's loader tests, the Compose Specification and
 * the Compose docs, and from the public projects named per row.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { composeToProject } from "../../src/config/compose.js";
import { parseDotenv } from "../../src/config/compose-text.js";
import { composeDuration } from "../../src/config/compose-values.js";
import { parseYaml } from "../../src/config/yaml-doc.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { errorOf } from "./fixtures/errors.js";

const root = mkdtempSync(join(tmpdir(), "skiff-compose-forms-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A fresh project directory holding `files`, and the compose text loaded from it. */
function project(text: string, files: Record<string, string | null> = {}, env: NodeJS.ProcessEnv = {}): () => ProjectSpec {
  const dir = join(root, `p${n++}`);
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) {
    if (content === null) mkdirSync(join(dir, name), { recursive: true });
    else writeFileSync(join(dir, name), content);
  }
  return () => composeToProject([parseYaml(text, "compose.yaml")], { dir, projectName: "p", files: [join(dir, "compose.yaml")], env });
}

describe("a .env or env_file that is a directory", () => {
  it("ignores a .env directory (a Python virtualenv), as compose does", () => {
    const p = project("services:\n  a:\n    image: base:${TAG:-1}\n", { ".env": null, ".env/bin": null })();
    expect(p.services[0]!.image).toBe("base:1");
  });

  it.each([
    ["env_file: .env", "compose.yaml:4:15"],
    ["env_file: [ok.env, .env]", "compose.yaml:4:24"],
    ["env_file: [{ path: .env, required: false }]", "compose.yaml:4:16"],
  ])("refuses %s at its place", (line, place) => {
    const err = errorOf(project(`services:\n  a:\n    image: base\n    ${line}\n`, { ".env": null, "ok.env": "A=1\n" }));
    expect([err.code, err.place, err.message]).toEqual(["ERR_SKIFF_CONFIG", place, expect.stringContaining("is a directory")]);
    expect(err.hint).toContain("virtualenv");
  });
});

describe("YAML merge keys", () => {
  it.each([
    // The Compose docs' fragments page (docs.docker.com/compose/how-tos/multiple-compose-files/ … fragments).
    [
      "x-common: &common\n  image: base\n  restart: always\n  environment: { A: '1' }\nservices:\n  a:\n    <<: *common\n    restart: 'no'\n",
      { image: "base", restart: "no", environment: { A: "1" } },
    ],
    // Airflow's docker-compose.yaml: `<<: *airflow-common` with an anchored environment merged in turn.
    [
      "x-env: &env\n  A: '1'\n  B: '1'\nx-common: &common\n  image: base\n  environment:\n    <<: *env\n    B: '2'\nservices:\n  a:\n    <<: *common\n",
      { image: "base", environment: { A: "1", B: "2" } },
    ],
    // YAML 1.1 merge of a list: the earlier map wins over the later one (compose-go's TestLoadWithMultipleMerge... shape).
    [
      "x-a: &a { image: first, hostname: a }\nx-b: &b { image: second, user: b }\nservices:\n  s:\n    <<: [*a, *b]\n",
      { image: "first", hostname: "a", user: "b" },
    ],
  ])("merges %#", (text, want) => {
    expect(project(text)().services[0]).toMatchObject(want);
  });

  it("places an error in a merged value at the anchor that wrote it", () => {
    const err = errorOf(project("x-c: &c\n  image: base\n  restart: sometimes\nservices:\n  a:\n    <<: *c\n"));
    expect([err.place, err.message]).toEqual(["compose.yaml:3:12", expect.stringContaining("restart policy")]);
  });
});

describe("interpolated values cast to their field's type", () => {
  const env = { N: "3", X: "5", T: "", BIND: "", PORT: "8080", TRUE: "yes" };
  it.each([
    ["deploy:\n      replicas: ${N}", { replicas: 3 }],
    ["scale: $N", { replicas: 3 }],
    ["healthcheck: { test: [CMD, x], retries: $X }", { healthcheck: expect.objectContaining({ retries: 5 }) }],
    // Sentry self-hosted / Mastodon: ports built from variables with an empty bind address.
    ['ports: ["${BIND}:80:80"]', { ports: [{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 80, guestPort: 80 }] }],
    ['ports: ["${BIND:-}:${PORT:-80}:80/udp"]', { ports: [{ protocol: "udp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }] }],
    ["ports: [{ target: 80, published: $PORT, host_ip: $BIND }]", { ports: [{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }] }],
    ["cpus: ${X}", { cpus: 5 }],
    ['deploy: { replicas: "2" }', { replicas: 2 }],
  ])("reads %s", (line, want) => {
    expect(project(`services:\n  a:\n    image: base\n    ${line}\n`, {}, env)().services[0]).toMatchObject(want);
  });

  it.each([
    ["enable_ipv6: ${T:-true}", undefined],
    ["internal: $TRUE", true],
    ["internal: ${T:-false}", false],
  ])("reads networks %s", (line, internal) => {
    const p = project(`services:\n  a:\n    image: base\n    networks: [n]\nnetworks:\n  n:\n    ${line}\n`, {}, env)();
    expect(p.networks[0]!.internal).toBe(internal ?? false);
  });

  it("still refuses a value that is not of the type, at its place", () => {
    const err = errorOf(project("services:\n  a:\n    image: base\n    deploy:\n      replicas: ${N}\n", {}, { N: "many" }));
    expect([err.place, err.message]).toEqual(["compose.yaml:5:17", expect.stringContaining("expected a number")]);
  });
});

describe("environment names with dots and dashes", () => {
  // Elasticsearch's and Confluent's documented compose files.
  it.each([
    ["list", "environment:\n      - discovery.type=single-node\n      - node.name=es01\n      - KAFKA-OPT=x\n      - cluster.name"],
    ["map", "environment:\n      discovery.type: single-node\n      node.name: es01\n      KAFKA-OPT: x\n      cluster.name:"],
  ])("accepts them in the %s form", (_, block) => {
    const p = project(`services:\n  es:\n    image: base\n    ${block}\n`, {}, { "cluster.name": "c1" })();
    expect(p.services[0]!.environment).toEqual({ "discovery.type": "single-node", "node.name": "es01", "KAFKA-OPT": "x", "cluster.name": "c1" });
  });

  it.each([
    ["list", "environment: ['A B=1']", "compose.yaml:4:19"],
    ["map", "environment: { 'A B': 1 }", "compose.yaml:4:20"],
  ])("refuses a name with a blank in the %s form at its place", (_, line, place) => {
    const err = errorOf(project(`services:\n  a:\n    image: base\n    ${line}\n`));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", place]);
  });
});

describe("x- extensions in nested objects", () => {
  // compose-go's loader tests (TestLoadExtensions… / spec examples): x- keys are allowed in every object.
  it("ignores them in healthcheck, ports, deploy, build, logging, networks, ipam and volumes", () => {
    const text = `services:
  a:
    image: base
    x-svc: 1
    healthcheck: { test: [CMD, x], x-note: 1 }
    ports: [{ target: 80, published: 8080, x-name: web }]
    deploy: { replicas: 1, x-team: a, resources: { limits: { memory: 512m, x-l: 1 } } }
    build: { context: ., x-b: 1 }
    logging: { driver: json-file, x-l: 1 }
    networks: { n: { x-n: 1 } }
    volumes: [{ type: volume, source: d, target: /d, x-v: 1 }]
    environment: { x-keep: kept }
    labels: { x-label: kept }
networks:
  n: { x-net: 1, ipam: { x-ipam: 1, config: [{ subnet: 10.9.0.0/24, x-c: 1 }] } }
volumes:
  d: { x-vol: 1 }
`;
    const s = project(text)().services[0]!;
    expect(s.ports).toEqual([{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }]);
    expect([s.environment, s.labels, s.memoryMiB]).toEqual([{ "x-keep": "kept" }, { "x-label": "kept" }, 512]);
  });
});

describe("Go durations", () => {
  // Go's time.ParseDuration syntax, as compose-go reads healthcheck durations.
  it.each([
    ["500us", 1],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
    ["1m30s", 90_000],
    ["0", 0],
    ["2500000ns", 3],
    [".5s", 500],
    ["10", 10_000],
  ])("reads %s", (text, ms) => expect(composeDuration(text, "f:1:1")).toBe(ms));

  it.each(["soon", "1d", "s", "1s2", "-1s"])("refuses %s", (text) => {
    expect(errorOf(() => composeDuration(text, "f:1:1"))).toMatchObject({ code: "ERR_SKIFF_CONFIG", place: "f:1:1" });
  });

  it("reads them in a healthcheck", () => {
    const s = project("services:\n  a:\n    image: base\n    healthcheck: { test: [CMD, x], interval: 1h30m, timeout: 1.5s, start_period: 500us }\n")().services[0]!;
    expect(s.healthcheck).toMatchObject({ intervalMs: 5_400_000, timeoutMs: 1500, startPeriodMs: 1 });
  });
});

describe("multi-line quoted .env values", () => {
  // compose-go dotenv's fixtures (quoted.env, multiline): values spanning lines, escapes in double quotes.
  it.each([
    ['KEY="line 1\nline 2"\nNEXT=1\n', { KEY: "line 1\nline 2", NEXT: "1" }],
    ["PEM='-----BEGIN KEY-----\nabc\n-----END KEY-----'\n", { PEM: "-----BEGIN KEY-----\nabc\n-----END KEY-----" }],
    ['JSON="{\n  \\"a\\": 1\n}" # comment\n', { JSON: '{\n  "a": 1\n}' }],
    ['A=x\nB="${A}\ny\\tz"\n', { A: "x", B: "x\ny\tz" }],
    ["S='no \\n ${A} escapes'\n", { S: "no \\n ${A} escapes" }],
  ])("reads %j", (text, want) => {
    expect(parseDotenv(text, ".env")).toEqual(want);
  });

  it("refuses an unterminated value at the line it starts on", () => {
    const err = errorOf(() => parseDotenv('A=1\nB="open\nstill\n', ".env"));
    expect([err.code, err.place]).toEqual(["ERR_SKIFF_CONFIG", ".env:2:1"]);
  });
});

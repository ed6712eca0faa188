/**
 * Real compose files from public projects (test/fixtures/compose-corpus,
 * origins and licences in its SOURCES.md), each loaded as `skiff config`
 * loads it. None may be wrongly refused: a file loads unless it cannot run
 * as VMs for a reason docs/foreign-formats.md gives, and then it gets that
 * documented error. A crash or an internal error fails the entry.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadProject } from "../../src/config/load.js";
import { SkiffError, type ErrorCode } from "../../src/errors.js";
import type { ProjectSpec, ServiceSpec } from "../../src/project/types.js";

const corpus = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/compose-corpus");

type Outcome = "loads" | { warning: RegExp } | { error: ErrorCode; message: RegExp };

interface Entry {
  /** The directory under test/fixtures/compose-corpus. */
  dir: string;
  /** `-f` files, in order; none means discovery, as `skiff config` in that directory. */
  files?: string[];
  /** What the user's shell (or the .env the project tells them to write) holds. */
  env?: Record<string, string>;
  expected: Outcome;
  why: string;
  /** What the file says that a loader reading it wrongly would lose (override merges, extends). */
  check?: (spec: ProjectSpec) => void;
}

const noImage = { error: "ERR_SKIFF_CONFIG", message: /has no image/ } as const;
const buildOnly = "a service has only build: (no image); docs/foreign-formats.md: skiff does not run Dockerfiles";

function service(spec: ProjectSpec, name: string): ServiceSpec {
  const svc = spec.services.find((s) => s.name === name);
  if (svc === undefined) throw new Error(`no service ${name} in ${spec.services.map((s) => s.name).join(", ")}`);
  return svc;
}

const hostPorts = (svc: ServiceSpec): number[] => svc.ports.map((p) => p.hostPort).sort((a, b) => a - b);

const entries: Entry[] = [
  { dir: "awesome-angular", expected: noImage, why: buildOnly },
  { dir: "awesome-elasticsearch-logstash-kibana", expected: "loads", why: "environment names with dots (discovery.type); single-file bind mounts, which compose allows" },
  { dir: "awesome-flask-redis", expected: noImage, why: buildOnly },
  { dir: "awesome-gitea-postgres", expected: "loads", why: "image services, expose" },
  { dir: "awesome-minecraft", expected: "loads", why: "one image service" },
  { dir: "awesome-nextcloud-postgres", expected: "loads", why: "image services" },
  { dir: "awesome-nextcloud-redis-mariadb", expected: "loads", why: "image services" },
  { dir: "awesome-nginx-golang-postgres", expected: noImage, why: buildOnly },
  { dir: "awesome-pihole-cloudflared-doh", expected: "loads", why: "a .env, static addresses, cap_add (warned)" },
  { dir: "awesome-plex", expected: "loads", why: "a .env, network_mode: host (warned)" },
  { dir: "awesome-portainer", expected: "loads", why: "one image service" },
  { dir: "awesome-postgresql-pgadmin", expected: "loads", why: "a .env" },
  { dir: "awesome-prometheus-grafana", expected: "loads", why: "image services" },
  { dir: "awesome-react-express-mongodb", expected: noImage, why: buildOnly },
  { dir: "awesome-traefik-golang", expected: noImage, why: buildOnly },
  { dir: "awesome-wireguard", expected: "loads", why: "a .env, sysctls (warned)" },
  { dir: "awesome-wordpress-mysql", expected: "loads", why: "image services" },
  {
    dir: "compose-go-extends",
    files: ["compose-test-extends.yaml"],
    expected: "loads",
    why: "extends: from a file in a subdirectory (compose-go's loader test)",
    check: (spec) => expect(service(spec, "importer").image).toBe("nginx"),
  },
  {
    dir: "compose-go-include",
    expected: noImage,
    why: "include: brings in a service that has only build: (compose-go's loader test); the include itself must be read",
  },
  {
    dir: "compose-go-simple-override",
    files: ["compose.yaml", "compose-with-overrides.yaml"],
    expected: "loads",
    why: "a second -f file overrides the image (compose-go's CLI test)",
    check: (spec) => expect(service(spec, "simple").image).toBe("haproxy"),
  },
  { dir: "docker-elk", expected: noImage, why: `${buildOnly} (every service is built from the Elastic images)` },
  { dir: "docker-elk-filebeat", files: ["docker-compose.yml", "extensions/filebeat/filebeat-compose.yml"], expected: noImage, why: `${buildOnly}; with an extension file` },
  { dir: "docker-elk-fleet", files: ["docker-compose.yml", "extensions/fleet/fleet-compose.yml"], expected: noImage, why: `${buildOnly}; with an extension file` },
  {
    dir: "docker4drupal",
    expected: "loads",
    why: "compose.override.yml is read by default and adds a named volume to php, crond and nginx",
    check: (spec) => {
      expect(spec.volumes.map((v) => v.name)).toContain("codebase");
      expect(JSON.stringify(service(spec, "php").volumes)).toContain("/var/www/html");
    },
  },
  { dir: "dockprom", expected: "loads", why: "image services, ${VAR:-default} in environment" },
  { dir: "dockprom-exporters", files: ["docker-compose.exporters.yml"], expected: "loads", why: "network_mode: host, privileged, devices (all warned)" },
  {
    dir: "frappe-docker",
    files: ["compose.yaml", "overrides/compose.mariadb.yaml", "overrides/compose.redis.yaml", "overrides/compose.noproxy.yaml"],
    env: { ERPNEXT_VERSION: "v16.32.3", DB_PASSWORD: "123" },
    expected: "loads",
    why: "merge keys (<<: *backend_defaults), override files adding services and ports, depends_on service_completed_successfully",
    check: (spec) => {
      expect(spec.services.map((s) => s.name)).toEqual(expect.arrayContaining(["db", "redis-cache", "redis-queue", "frontend", "configurator"]));
      expect(hostPorts(service(spec, "frontend"))).toContain(8080);
    },
  },
  { dir: "jitsi-meet", expected: "loads", why: "ports from variables (${HTTP_PORT}:80), restart: ${RESTART_POLICY:-unless-stopped}" },
  { dir: "kong", env: { KONG_PASSWORD: "kong" }, expected: "loads", why: "merge keys into environment (<<: *kong-env), x- keys, secrets (warned)" },
  { dir: "mattermost", expected: "loads", why: "read_only: ${MATTERMOST_CONTAINER_READONLY} (a bool from the .env), restart from a variable" },
  {
    dir: "mattermost-without-nginx",
    files: ["docker-compose.yml", "docker-compose.without-nginx.yml"],
    expected: "loads",
    why: "the README's override for running without nginx: ports ${APP_PORT}:8065 and ${CALLS_PORT}:${CALLS_PORT}/udp",
    check: (spec) => expect(hostPorts(service(spec, "mattermost"))).toEqual(expect.arrayContaining([8065, 8443])),
  },
  { dir: "n8n-caddy", expected: "loads", why: "external volumes (warned), ports from variables" },
  { dir: "n8n-withpostgres", expected: "loads", why: "a .env, healthcheck, links (warned)" },
  { dir: "n8n-withpostgresandworker", expected: "loads", why: "merge keys (<<: *shared) in services" },
  { dir: "netbox-docker", expected: "loads", why: "merge keys (<<: *netbox), env_file in a subdirectory" },
  {
    dir: "netbox-docker-test",
    files: ["docker-compose.test.yml", "docker-compose.test.override.yml"],
    env: { VERSION: "latest", IMAGE: "docker.io/netboxcommunity/netbox:latest" },
    expected: "loads",
    why: "the CI override adds a port; start_period: ${NETBOX_START_PERIOD-120s}",
    check: (spec) => expect(service(spec, "netbox").ports).toContainEqual({ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8000, guestPort: 8080 }),
  },
  { dir: "otel-demo", expected: "loads", why: "ports from variables (- \"${AD_PORT}\"), x-default-logging anchor, build with image (warned)" },
  { dir: "redash", expected: noImage, why: `${buildOnly} (the server, scheduler and worker come from <<: *redash-service, built from .)` },
  { dir: "sentry-self-hosted", expected: "loads", why: "merge keys everywhere, retries: $HEALTHCHECK_RETRIES (a number from the .env)" },
  { dir: "spec-extension-env", expected: "loads", why: "the spec's extension example: <<: *env at service level" },
  { dir: "spec-extension-merge-list", expected: "loads", why: "the spec's extension example: << : [*default-environment, *keys]" },
  { dir: "spec-extension-xkeys", expected: "loads", why: "the spec's extension example: x-custom and x-foo in a service" },
  { dir: "spec-fragments-env", expected: "loads", why: "the spec's fragments example 4: <<: *env in environment" },
  {
    dir: "spec-merge-override",
    expected: "loads",
    why: "the spec's merge example: compose.override.yaml replaces ports with !override",
    check: (spec) => expect(service(spec, "app").ports).toEqual([{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8443, guestPort: 443 }]),
  },
  {
    dir: "spec-merge-reset",
    expected: "loads",
    why: "the spec's merge example: compose.override.yaml clears ports and FOO with !reset",
    check: (spec) => {
      expect(service(spec, "app").ports).toEqual([]);
      expect(service(spec, "app").environment).not.toHaveProperty("FOO");
    },
  },
  {
    dir: "spec-profiles",
    expected: { warning: /profiles/ },
    why: "the spec's profiles example: with no profile active only foo runs",
    check: (spec) => expect(spec.services.map((s) => s.name)).toEqual(["foo"]),
  },
  { dir: "temporal", expected: "loads", why: "environment names with dots (cluster.routing.allocation.disk.threshold_enabled)" },
  { dir: "temporal-postgres", files: ["docker-compose-postgres.yml"], expected: "loads", why: "a .env for image versions" },
];

/** The outcome, or the error that is neither a SkiffError nor one with a documented code (a crash). */
async function outcomeOf(entry: Entry): Promise<{ spec: ProjectSpec } | { error: SkiffError }> {
  try {
    const spec = await loadProject({
      cwd: path.join(corpus, entry.dir),
      ...(entry.files === undefined ? {} : { files: entry.files }),
      env: { ...entry.env },
    });
    return { spec };
  } catch (err) {
    if (err instanceof SkiffError && err.code !== "ERR_SKIFF_INTERNAL") return { error: err };
    throw err;
  }
}

const shown = (e: SkiffError) => `${e.code} at ${e.place ?? "?"}: ${e.message}`;

describe("compose corpus: real files are not wrongly refused", () => {
  it("has the corpus the issue asks for", () => {
    expect(entries.length).toBeGreaterThanOrEqual(40);
    expect(new Set(entries.map((e) => e.dir)).size).toBe(entries.length);
  });

  for (const entry of entries) {
    it(`${entry.dir}: ${typeof entry.expected === "string" ? entry.expected : "error" in entry.expected ? entry.expected.error : "warns"} (${entry.why})`, async () => {
      const got = await outcomeOf(entry);
      const expected = entry.expected;
      if (typeof expected === "object" && "error" in expected) {
        if ("spec" in got) throw new Error(`expected ${expected.error}, but it loaded`);
        expect(shown(got.error)).toMatch(new RegExp(`^${expected.error} at .*${expected.message.source}`));
        return;
      }
      if ("error" in got) throw new Error(`wrongly refused: ${shown(got.error)}`);
      if (typeof expected === "object") expect(got.spec.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(expected.warning));
      entry.check?.(got.spec);
    });
  }
});

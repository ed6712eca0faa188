import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { canonicalJson, desiredVm } from "../../src/project/desired.js";
import { servicesToStart } from "../../src/project/order.js";
import { describeStep } from "../../src/project/provision.js";
import type { ProjectSpec, ServiceSpec } from "../../src/project/types.js";
import { taskReporter } from "../../src/cli/task-list.js";
import { errorOf } from "./fixtures/errors.js";

function service(name: string, overrides: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name,
    image: "base",
    layers: [],
    kernelArgs: [],
    environment: {},
    userNetwork: true,
    networks: [],
    ports: [],
    dns: [],
    volumes: [],
    dependsOn: [],
    restart: "no",
    replicas: 1,
    provision: [],
    place: `skiff.yml:3:3`,
    ...overrides,
  };
}

function project(services: ServiceSpec[]): ProjectSpec {
  return {
    name: "demo",
    dir: "/srv/demo",
    format: "skiff",
    files: ["/srv/demo/skiff.yml"],
    services,
    networks: [{ name: "lan", driver: "private", subnet: "10.70.0.0/24", masquerade: false, internal: false, place: "skiff.yml:20:3" }],
    volumes: [{ name: "data", sizeBytes: 1 << 30, place: "skiff.yml:24:3" }],
    layerPaths: [],
    warnings: [],
  };
}

const image = { ref: "base", digest: "sha256:aaa" };

describe("a service's desired VM", () => {
  const web = service("web", {
    memoryMiB: 384,
    networks: [{ network: "lan", ipv4Address: "10.70.0.10", masquerade: false }],
    volumes: [
      { kind: "bind", source: "/srv/demo/src", target: "/src", readOnly: true },
      { kind: "volume", volume: "data", target: "/data", readOnly: false },
    ],
    ports: [{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 }],
  });

  it("is named and labelled after the project and turned into create options", () => {
    const d = desiredVm(project([web]), web, 1, image);
    expect(d.name).toBe("demo-web-1");
    expect(d.options).toMatchObject({
      image: "base",
      name: "demo-web-1",
      hostname: "web",
      memoryMiB: 384,
      network: { mode: "user", forwards: web.ports },
      networks: [{ network: "demo_lan", ip: "10.70.0.10", place: "skiff.yml:3:3" }],
      mounts: [
        { kind: "bind", source: "/srv/demo/src", target: "/src", readOnly: true },
        { kind: "volume", volume: "demo_data", target: "/data", readOnly: false },
      ],
      init: { restart: "no" },
      labels: { "skiff.project": "demo", "skiff.service": "web", "skiff.replica": "1", "skiff.spec-hash": d.hash },
    });
  });

  it("has a hash that changes with what defines the VM and with nothing else", () => {
    const p = project([web]);
    const base = desiredVm(p, web, 1, image).hash;
    expect(desiredVm(p, { ...web }, 1, { ...image }).hash).toBe(base);
    expect(desiredVm(p, { ...web, memoryMiB: 512 }, 1, image).hash).not.toBe(base);
    expect(desiredVm(p, web, 1, { ref: "base", digest: "sha256:bbb" }).hash).not.toBe(base);
    expect(desiredVm(p, { ...web, environment: { A: "1" } }, 1, image).hash).not.toBe(base);
    expect(desiredVm({ ...p, networks: [{ ...p.networks[0]!, subnet: "10.71.0.0/24" }] }, web, 1, image).hash).not.toBe(base);
    // What `up` does around the VM is not what the VM is.
    expect(desiredVm(p, { ...web, provision: [{ kind: "shell", inline: "true", place: "x" }] }, 1, image).hash).toBe(base);
    expect(desiredVm(p, { ...web, healthcheck: { test: ["true"], intervalMs: 1, timeoutMs: 1, retries: 1, startPeriodMs: 0 } }, 1, image).hash).toBe(base);
    expect(desiredVm(p, { ...web, place: "other.yml:9:9" }, 1, image).hash).toBe(base);
  });

  it("names replicas apart when there are several", () => {
    const many = { ...web, replicas: 2, networks: [] };
    expect(desiredVm(project([many]), many, 2, image).options.hostname).toBe("web-2");
  });

  it("gives a cloud image its SSH user and cloud-init host name, and no init (it has its own)", () => {
    const vm = service("vm", { image: undefined, imageUrl: "https://example.test/d.qcow2", ssh: { user: "ubuntu" }, cloudInit: { hostname: "box" } });
    const d = desiredVm(project([vm]), vm, 1, { ref: "https://example.test/d.qcow2", digest: "sha256:ccc" });
    expect(d.options).toMatchObject({ imageUrl: "https://example.test/d.qcow2", sshUser: "ubuntu", hostname: "box" });
    expect(d.options.init).toBeUndefined();
  });

  it("hashes objects the same whatever their key order", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { y: 2, z: 1 }] }, b: 1 }));
  });
});

describe("the order services start in", () => {
  const db = service("db");
  const cache = service("cache");
  const web = service("web", { dependsOn: [{ service: "db", condition: "service_healthy" }, { service: "cache", condition: "service_started" }] });
  const p = project([web, db, cache]);

  it("puts dependencies first and takes them along when only a dependent is asked for", () => {
    expect(servicesToStart(p).map((s) => s.name)).toEqual(["db", "cache", "web"]);
    expect(servicesToStart(p, ["web"]).map((s) => s.name)).toEqual(["db", "cache", "web"]);
    expect(servicesToStart(p, ["cache"]).map((s) => s.name)).toEqual(["cache"]);
  });

  it("refuses an unknown service and a cycle", () => {
    expect(errorOf(() => servicesToStart(p, ["nope"]))).toMatchObject({ code: "ERR_SKIFF_USAGE", place: "SERVICE" });
    const a = service("a", { dependsOn: [{ service: "b", condition: "service_started" }] });
    const b = service("b", { dependsOn: [{ service: "a", condition: "service_started" }] });
    expect(errorOf(() => servicesToStart(project([a, b])))).toMatchObject({ code: "ERR_SKIFF_CONFIG", message: expect.stringContaining("a -> b -> a") });
  });
});

describe("provision steps and the task list", () => {
  it("describes steps in one line", () => {
    expect(describeStep({ kind: "shell", inline: "apt-get install -y nginx", place: "" })).toBe("shell: apt-get install -y nginx");
    expect(describeStep({ kind: "shell", inline: "a\nb", place: "" })).toBe("shell: a...");
    expect(describeStep({ kind: "shell", script: "/p/setup.sh", place: "" })).toBe("shell: script /p/setup.sh");
    expect(describeStep({ kind: "file", source: "/p/a", destination: "/etc/a", place: "" })).toBe("file: /p/a -> /etc/a");
  });

  it("prints plain lines off a terminal, output in whole lines with the VM's name", () => {
    const out = new PassThrough();
    let text = "";
    out.on("data", (d: Buffer) => (text += d.toString()));
    const r = taskReporter(out as unknown as NodeJS.WriteStream, false);
    r.task({ task: "demo-web-1", state: "starting", message: "booting demo-web-1", elapsedMs: 1200 });
    r.output({ vm: "demo-web-1", stream: "stdout", text: "hel" });
    r.output({ vm: "demo-db-1", stream: "stdout", text: "one\ntw" });
    r.output({ vm: "demo-web-1", stream: "stdout", text: "lo\n" });
    r.close();
    expect(text).toBe("[  1.2s] booting demo-web-1\ndemo-db-1 | one\ndemo-web-1 | hello\ndemo-db-1 | tw\n");
  });
});

/**
 * OCI images end to end: an image built by the test (several layers with a
 * whiteout, an opaque dir, a hard link, a symlink, a file owned by a
 * non-root user, a zstd layer) is pushed to a real registry on loopback,
 * then `skiff run` pulls it, builds its base and boots it; what the guest
 * sees is checked from inside, with the image config honoured.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";
import { buildOciLayout, type TarEntry } from "../vm/oci-layout.js";
import { pushLayout, startRegistry, type TestRegistry } from "../vm/registry.js";

const h = new Harness();
let registry: TestRegistry;
let work: string;
let ref: string;

/** A busybox userland as a layer: the host's static busybox and its applets. */
function busyboxLayer(): TarEntry[] {
  const applets = ["sh", "ls", "cat", "id", "stat", "echo", "pwd", "env", "readlink", "test", "grep", "true", "sleep"];
  return [
    { type: "dir", path: "bin" },
    { type: "file", path: "bin/busybox", content: readFileSync("/bin/busybox"), mode: 0o755 },
    ...applets.map((a): TarEntry => ({ type: "symlink", path: `bin/${a}`, target: "busybox" })),
    { type: "dir", path: "etc" },
    { type: "file", path: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" },
    { type: "file", path: "etc/group", content: "root:x:0:\napp:x:1000:\n" },
    { type: "dir", path: "home/app", uid: 1000, gid: 1000 },
    { type: "dir", path: "old" },
    { type: "file", path: "old/gone.txt", content: "deleted by a whiteout\n" },
    { type: "dir", path: "opaque" },
    { type: "file", path: "opaque/lower.txt", content: "hidden by the opaque dir\n" },
  ];
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-oci-"));
  registry = await startRegistry();
  const layout = await buildOciLayout(join(work, "layout"), {
    tag: "v1",
    images: [
      {
        layers: [
          { entries: busyboxLayer(), compression: "gzip" },
          {
            compression: "zstd",
            entries: [
              { type: "whiteout", path: "old/gone.txt" },
              { type: "opaque", path: "opaque" },
              { type: "file", path: "opaque/upper.txt", content: "from the upper layer\n" },
              { type: "dir", path: "srv", uid: 1000, gid: 1000 },
              { type: "file", path: "srv/owned.txt", content: "mine\n", mode: 0o640, uid: 1000, gid: 1000 },
              { type: "hardlink", path: "srv/owned-link.txt", target: "srv/owned.txt" },
              { type: "symlink", path: "srv/latest", target: "/srv/owned.txt" },
            ],
          },
        ],
        config: {
          Entrypoint: ["/bin/sh", "-c"],
          Cmd: ['echo "user=$(id -u) dir=$(pwd) greeting=$GREETING"'],
          Env: ["PATH=/bin", "GREETING=ahoy"],
          WorkingDir: "/srv",
          User: "app",
          ExposedPorts: ["8080/tcp"],
        },
      },
    ],
  });
  ref = await pushLayout(registry, layout, "skiff-test/app");
}, 120_000);

afterAll(async () => {
  await h.cleanup();
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

describe("OCI image from a loopback registry", () => {
  it("run pulls it, boots it and honours Entrypoint, Cmd, Env, WorkingDir and User", async () => {
    const r = await h.run(["run", "--rm", ref]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("user=1000 dir=/srv greeting=ahoy\n");
    // The shared test cache may hold these (deterministic) layers from an earlier run.
    expect(r.stderr).toMatch(/Pull complete|Already exists/);
    expect(r.stderr).toContain("Status: downloaded");
  });

  it("keeps layers' changes, owners, modes and links, and a second run does no pull", async () => {
    const script = [
      "cat /opaque/upper.txt",
      "ls /opaque",
      "test -e /old/gone.txt && echo gone-still-there || echo gone-deleted",
      "stat -c '%u:%g %a %h' /srv/owned.txt",
      "readlink /srv/latest",
      "cat /srv/latest",
    ].join("; ");
    const r = await h.run(["run", "--rm", "-u", "0", ref, script]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(["from the upper layer", "upper.txt", "gone-deleted", "1000:1000 640 2", "/srv/owned.txt", "mine", ""].join("\n"));
    expect(r.stderr).not.toContain("Pull");
  });

  it("image ls and inspect show it with its exposed ports; rm refuses while a VM uses it", async () => {
    await h.ok(["create", "--name", "user-of-image", ref]);
    const ls = await h.ok(["image", "ls"]);
    expect(ls).toContain("skiff-test/app:v1");
    const inspect = JSON.parse(await h.ok(["image", "inspect", ref])) as { config: { exposedPorts: string[] }; usedBy: string[] };
    expect(inspect.config.exposedPorts).toEqual(["8080/tcp"]);
    expect(inspect.usedBy).toEqual(["user-of-image"]);
    const vm = JSON.parse(await h.ok(["inspect", "user-of-image"]))[0] as { exposedPorts: string[]; user: string; workingDir: string };
    expect(vm).toMatchObject({ exposedPorts: ["8080/tcp"], user: "app", workingDir: "/srv" });
    const refused = await h.run(["image", "rm", ref]);
    expect(refused.code).toBe(4);
    await h.ok(["rm", "user-of-image"]);
    await h.ok(["image", "rm", ref]);
    expect(await h.ok(["image", "ls"])).not.toContain("skiff-test/app");
  });

  it("an unknown tag is a clear error and makes no VM", async () => {
    const r = await h.run(["run", "--rm", `${registry.host}/skiff-test/app:nope`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("ERR_SKIFF_IMAGE_NOT_FOUND");
    expect(await h.ok(["ps", "-a", "-q"])).toBe("");
  });
});

import { describe, expect, it } from "vitest";
import { runtimeFrom } from "../../src/engine/create.js";
import type { ImageRuntimeConfig } from "../../src/image/oci/types.js";

const nginx: ImageRuntimeConfig = {
  entrypoint: ["/docker-entrypoint.sh"],
  cmd: ["nginx", "-g", "daemon off;"],
  env: { PATH: "/usr/bin:/bin", NGINX_VERSION: "1.27" },
  workingDir: "/srv",
  user: "nginx",
  exposedPorts: ["80/tcp"],
  labels: {},
};

describe("runtimeFrom (Docker's rules)", () => {
  it("takes the image's entrypoint, cmd, env, user and working dir", () => {
    expect(runtimeFrom(nginx, {})).toEqual({
      entrypoint: ["/docker-entrypoint.sh"],
      command: ["nginx", "-g", "daemon off;"],
      env: { PATH: "/usr/bin:/bin", NGINX_VERSION: "1.27" },
      user: "nginx",
      workingDir: "/srv",
      exposedPorts: ["80/tcp"],
    });
  });

  it("a CMD on the command line replaces the image's Cmd, not its entrypoint", () => {
    const r = runtimeFrom(nginx, { command: ["nginx", "-t"] });
    expect([...r.entrypoint, ...r.command]).toEqual(["/docker-entrypoint.sh", "nginx", "-t"]);
  });

  it("--entrypoint drops the image's Cmd", () => {
    const r = runtimeFrom(nginx, { entrypoint: ["/bin/sh"] });
    expect([...r.entrypoint, ...r.command]).toEqual(["/bin/sh"]);
    const withCmd = runtimeFrom(nginx, { entrypoint: ["/bin/sh"], command: ["-c", "id"] });
    expect([...withCmd.entrypoint, ...withCmd.command]).toEqual(["/bin/sh", "-c", "id"]);
  });

  it("-e overrides the image's env, -u and -w its user and dir", () => {
    const r = runtimeFrom(nginx, { env: { NGINX_VERSION: "x", A: "1" }, user: "0", workingDir: "/" });
    expect(r.env).toEqual({ PATH: "/usr/bin:/bin", NGINX_VERSION: "x", A: "1" });
    expect(r.user).toBe("0");
    expect(r.workingDir).toBe("/");
  });
});

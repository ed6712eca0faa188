import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { serviceBlanks } from "../../src/config/foreign.js";
import { vmfileToProject } from "../../src/config/vmfile.js";
import type { ProjectSpec } from "../../src/project/types.js";
import { errorOf } from "./fixtures/errors.js";

const ctx = { dir: "/proj", projectName: "demo", files: ["/proj/VMFile.kdl"], env: { HOME: "/home/u" } };
const load = (text: string): ProjectSpec => vmfileToProject(text, "VMFile.kdl", ctx);

/** vmctl's own full example (its parser test), in KDL v1 as vmctl's docs write it. */
const full = `vm "web" {
    image "images/ubuntu.qcow2"
    vcpus 2
    memory 2048
    disk 20
    network "tap" bridge="br0"

    cloud-init {
        hostname "webhost"
        ssh-key "~/.ssh/id_ed25519.pub"
        user-data "cloud-config.yaml"
    }

    ssh {
        user "admin"
        private-key "~/.ssh/id_ed25519"
    }

    provision "shell" {
        inline "apt update"
    }

    provision "file" {
        source "./nginx.conf"
        destination "/etc/nginx/nginx.conf"
    }
    provision "shell" {
        script "~/setup.sh"
    }
}

/- vm "disabled" {
    image "x"
}

vm "cloud" {
    image-url "https://example.com/image.qcow2"
    network "none"
}

vm "db" {
    image-url r#"https://example.com/db.qcow2"#
    network "tap" {
        bridge "br0"
    }
}
`;

describe("vmfileToProject", () => {
  it("translates vmctl's full example to the whole ProjectSpec", () => {
    expect(load(full)).toEqual({
      name: "demo",
      dir: "/proj",
      format: "vmfile",
      files: ["/proj/VMFile.kdl"],
      services: [
        {
          ...serviceBlanks(),
          name: "web",
          imageUrl: "/proj/images/ubuntu.qcow2",
          memoryMiB: 2048,
          cpus: 2,
          diskBytes: 20 * 1024 ** 3,
          userNetwork: false,
          networks: [{ network: "br0", masquerade: false }],
          ssh: { user: "admin" },
          cloudInit: { hostname: "webhost", userDataPath: "/proj/cloud-config.yaml" },
          provision: [
            { kind: "shell", inline: "apt update", place: "VMFile.kdl:19:5" },
            { kind: "file", source: "/proj/nginx.conf", destination: "/etc/nginx/nginx.conf", place: "VMFile.kdl:23:5" },
            { kind: "shell", script: "/home/u/setup.sh", place: "VMFile.kdl:27:5" },
          ],
          place: "VMFile.kdl:1:1",
        },
        {
          ...serviceBlanks(),
          name: "cloud",
          imageUrl: "https://example.com/image.qcow2",
          memoryMiB: 1024,
          cpus: 1,
          userNetwork: false,
          networks: [],
          place: "VMFile.kdl:36:1",
        },
        {
          ...serviceBlanks(),
          name: "db",
          imageUrl: "https://example.com/db.qcow2",
          memoryMiB: 1024,
          cpus: 1,
          userNetwork: false,
          networks: [{ network: "br0", masquerade: false }],
          place: "VMFile.kdl:41:1",
        },
      ],
      networks: [{ name: "br0", driver: "bridge", masquerade: false, internal: false, place: "VMFile.kdl:6:5" }],
      volumes: [],
      layerPaths: [],
      warnings: [
        {
          message: "cloud-init ssh-key (service web): skiff makes a key per VM and authorizes it for the SSH user; `skiff ssh` uses it",
          place: "VMFile.kdl:10:9",
        },
        { message: "ssh private-key (service web): skiff logs in with the key it made for the VM", place: "VMFile.kdl:16:9" },
      ],
    });
  });

  it("reads KDL v2 too, with vmctl's defaults", () => {
    const p = load('vm web {\n  image-url "https://x/y.img"\n  ssh { }\n  memory 512\n}\n');
    expect(p.services[0]).toMatchObject({ name: "web", imageUrl: "https://x/y.img", cpus: 1, memoryMiB: 512, userNetwork: true, ssh: { user: "vm" } });
  });

  it.each([
    ["a KDL syntax error", 'vm "a" {\n  image "x\n}\n', "VMFile.kdl:4:1", "EOF inside string"],
    ["no vm blocks", "// nothing\n", "VMFile.kdl", "no vm blocks"],
    ["an unknown top-level node", 'vm "a" {\n  image "x"\n}\nmachine "b" {}\n', "VMFile.kdl:4:1", 'unknown node "machine"'],
    ["a vm without a name", "vm {\n  image \"x\"\n}\n", "VMFile.kdl:1:1", "one string"],
    ["a vm without a block", 'vm "a"\n', "VMFile.kdl:1:1", "no { … } block"],
    ["duplicate VM names", 'vm "a" {\n  image "x"\n}\nvm "a" {\n  image "y"\n}\n', "VMFile.kdl:4:1", "duplicate VM name"],
    ["no image", 'vm "a" {\n  vcpus 1\n}\n', "VMFile.kdl:1:1", "has no image"],
    ["two image sources", 'vm "a" {\n  image "x"\n  image-url "https://y"\n}\n', "VMFile.kdl:3:3", "both image and image-url"],
    ["an OCI image", 'vm "a" {\n  image-url "oci://ghcr.io/o/i:1"\n}\n', "VMFile.kdl:2:3", "oci://"],
    ["an unknown node in a vm", 'vm "a" {\n  image "x"\n  cpus 2\n}\n', "VMFile.kdl:3:3", 'unknown node "cpus"'],
    ["a node given twice", 'vm "a" {\n  image "x"\n  vcpus 1\n  vcpus 2\n}\n', "VMFile.kdl:4:3", "given twice"],
    ["a string where a number goes", 'vm "a" {\n  image "x"\n  memory "2g"\n}\n', "VMFile.kdl:3:10", "whole number"],
    ["too many vcpus", 'vm "a" {\n  image "x"\n  vcpus 999\n}\n', "VMFile.kdl:3:3", "CPU count"],
    ["an unknown network type", 'vm "a" {\n  image "x"\n  network "bridge"\n}\n', "VMFile.kdl:3:11", "unknown network type"],
    ["an unknown network property", 'vm "a" {\n  image "x"\n  network "tap" br="br0"\n}\n', "VMFile.kdl:3:17", "unknown property br="],
    ["a property on a user network", 'vm "a" {\n  image "x"\n  network "user" bridge="br0"\n}\n', "VMFile.kdl:3:18", "unknown property"],
    ["an unknown cloud-init node", 'vm "a" {\n  image "x"\n  cloud-init {\n    password "x"\n  }\n}\n', "VMFile.kdl:4:5", 'unknown node "password"'],
    ["an ssh without a block", 'vm "a" {\n  image "x"\n  ssh "root"\n}\n', "VMFile.kdl:3:3", "ssh takes a { … } block"],
    ["a shell step with both", 'vm "a" {\n  image "x"\n  provision "shell" {\n    inline "a"\n    script "b"\n  }\n}\n', "VMFile.kdl:5:5", "exactly one of inline or script"],
    ["a shell step with neither", 'vm "a" {\n  image "x"\n  provision "shell" {\n  }\n}\n', "VMFile.kdl:3:3", "exactly one of inline or script"],
    ["a file step without destination", 'vm "a" {\n  image "x"\n  provision "file" {\n    source "a"\n  }\n}\n', "VMFile.kdl:3:3", "needs destination"],
    ["an unknown provision type", 'vm "a" {\n  image "x"\n  provision "ansible" {\n  }\n}\n', "VMFile.kdl:3:13", "unknown provision type"],
    ["a provision without a block", 'vm "a" {\n  image "x"\n  provision "shell"\n}\n', "VMFile.kdl:3:3", "no { … } block"],
  ])("rejects %s with ERR_SKIFF_CONFIG at its place", (_, text, place, message) => {
    const err = errorOf(() => load(text));
    expect(err.code).toBe("ERR_SKIFF_CONFIG");
    expect(err.place).toBe(place);
    expect(err.message).toContain(message);
  });

  it("loads examples/vmfile/VMFile.kdl cleanly", () => {
    const dir = resolve("examples/vmfile");
    const file = join(dir, "VMFile.kdl");
    const p = vmfileToProject(readFileSync(file, "utf8"), file, { dir, projectName: "vmfile", files: [file] });
    expect(p.warnings).toEqual([]);
    expect(p.services.map((s) => [s.name, s.cpus, s.memoryMiB, s.diskBytes, s.ssh, s.cloudInit])).toEqual([
      ["builder", 2, 1024, 4 * 1024 ** 3, { user: "debian" }, { hostname: "builder" }],
    ]);
    expect(p.services[0]!.provision.map((s) => ("script" in s ? s.script : "source" in s ? s.source : s.inline))).toEqual([
      join(dir, "config/motd"),
      join(dir, "scripts/setup.sh"),
      "test -s /etc/motd && echo provisioned",
    ]);
    for (const step of p.services[0]!.provision) {
      if ("script" in step) expect(readFileSync(step.script, "utf8")).toContain("install");
      if ("source" in step) expect(readFileSync(step.source, "utf8")).toContain("builder");
    }
  });
});

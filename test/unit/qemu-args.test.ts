import { describe, expect, it } from "vitest";
import { toQemuArgs } from "../../src/qemu/args.js";
import { tcgCacheMiB } from "../../src/engine/launch.js";
import { macAddress } from "../../src/network/nics.js";
import type { LaunchPlan } from "../../src/qemu/plan.js";
import { errorOf } from "./fixtures/errors.js";
import { launchPlan } from "./fixtures/launch-plan.js";

const dir = "/var/lib/skiff/vms/web";

/** The shared plan (fixtures/launch-plan.ts) with this file's own paths, which its inline snapshots show. */
function plan(overrides: Partial<LaunchPlan> = {}): LaunchPlan {
  return launchPlan({
    kernel: { path: "/var/lib/skiff/kernels/6.1/vmlinux", cmdline: "console=ttyS0 quiet" },
    initrdPath: `${dir}/boot.cpio`,
    rootDisk: { overlayPath: `${dir}/root.qcow2` },
    console: { socketPath: `${dir}/console.sock`, logPath: `${dir}/console.log` },
    qmpSocketPath: `${dir}/qmp.sock`,
    pidfilePath: `${dir}/qemu.pid`,
    agentPorts: [
      { name: "skiff.agent.0", socketPath: `${dir}/agent0.sock` },
      { name: "skiff.agent.1", socketPath: `${dir}/agent1.sock` },
    ],
    ...overrides,
  });
}

/** One option and its value per line: readable snapshots. */
function pretty(args: string[]): string {
  const lines: string[] = [];
  for (const arg of args) {
    if (arg.startsWith("-") && !/^-\d/.test(arg)) lines.push(arg);
    else lines[lines.length - 1] += ` ${arg}`;
  }
  return lines.join("\n");
}

describe("toQemuArgs", () => {
  it("builds a single-CPU TCG VM without network", () => {
    expect(pretty(toQemuArgs(plan()))).toMatchInlineSnapshot(`
      "-M microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on,acpi=on
      -nodefaults
      -no-user-config
      -display none
      -no-reboot
      -accel tcg,thread=multi
      -cpu max
      -smp 1,maxcpus=2
      -m 256M
      -kernel /var/lib/skiff/kernels/6.1/vmlinux
      -initrd /var/lib/skiff/vms/web/boot.cpio
      -append console=ttyS0 quiet nr_cpus=1
      -chardev socket,id=console,path=/var/lib/skiff/vms/web/console.sock,server=on,wait=off,logfile=/proc/self/fd/12,logappend=on
      -serial chardev:console
      -drive id=root,file=/var/lib/skiff/vms/web/root.qcow2,format=qcow2,if=none,cache=writeback,discard=unmap
      -device virtio-blk-device,drive=root,serial=skiff-root
      -device virtio-rng-device
      -device virtio-balloon-device,free-page-reporting=on
      -device virtio-serial-device,max_ports=3
      -chardev socket,id=agent0,path=/var/lib/skiff/vms/web/agent0.sock,server=on,wait=off
      -device virtserialport,chardev=agent0,name=skiff.agent.0
      -chardev socket,id=agent1,path=/var/lib/skiff/vms/web/agent1.sock,server=on,wait=off
      -device virtserialport,chardev=agent1,name=skiff.agent.1
      -qmp unix:/var/lib/skiff/vms/web/qmp.sock,server=on,wait=off
      -pidfile /var/lib/skiff/vms/web/qemu.pid"
    `);
  });

  it("gives a one-vCPU TCG machine room for a second, so QEMU keeps the guest's memory barriers, and tells the guest nr_cpus=1", () => {
    // With max_cpus 1 QEMU translates without fences while its device threads share guest RAM: lost virtio completions.
    // The guest stays a one-CPU kernel: one that saw two possible CPUs cost 3.5x the host CPU while idle.
    const args = toQemuArgs(plan({ cpus: 1 }));
    expect(args.slice(args.indexOf("-accel"), args.indexOf("-accel") + 2)).toEqual(["-accel", "tcg,thread=multi"]);
    expect(args.slice(args.indexOf("-smp"), args.indexOf("-smp") + 2)).toEqual(["-smp", "1,maxcpus=2"]);
    expect(args[args.indexOf("-append") + 1]).toMatch(/ nr_cpus=1$/);
    for (const other of [plan({ accel: "kvm", cpus: 1 }), plan({ cpus: 2 })]) {
      const a = toQemuArgs(other);
      expect(a[a.indexOf("-smp") + 1]).toBe(String(other.cpus));
      expect(a[a.indexOf("-append") + 1]).not.toContain("nr_cpus");
    }
  });

  it("uses multi-threaded TCG for several CPUs and appends tsc_early_khz", () => {
    const args = toQemuArgs(plan({ cpus: 4, memoryMiB: 1024, tscKhz: 2_995_200 }));
    expect(args).toContain("tcg,thread=multi");
    expect(args.slice(args.indexOf("-smp"), args.indexOf("-smp") + 4)).toEqual(["-smp", "4", "-m", "1024M"]);
    expect(args[args.indexOf("-append") + 1]).toBe("console=ttyS0 quiet tsc_early_khz=2995200");
  });

  it("caps TCG's code cache when the plan says so, and never under KVM", () => {
    expect(toQemuArgs(plan({ tcgCacheMiB: 32 }))).toContain("tcg,thread=multi,tb-size=32");
    expect(toQemuArgs(plan({ cpus: 2, tcgCacheMiB: 64 }))).toContain("tcg,thread=multi,tb-size=64");
    expect(toQemuArgs(plan({})).join(" ")).not.toContain("tb-size");
    expect(() => toQemuArgs(plan({ tcgCacheMiB: 0 }))).toThrow(/TCG cache size/);
  });

  it("passes the guest's flushes to the root disk unless the plan says the disk is worth nothing until power-off", () => {
    expect(toQemuArgs(plan({})).join(" ")).toContain("format=qcow2,if=none,cache=writeback,");
    const build = toQemuArgs(plan({ rootDisk: { overlayPath: `${dir}/root.qcow2`, ignoreFlushes: true } })).join(" ");
    expect(build).toContain(`id=root,file=${dir}/root.qcow2,format=qcow2,if=none,cache=unsafe,discard=unmap`);
  });

  it("takes the cache's size from SKIFF_TCG_CACHE_MIB: 32 MiB unless told, 0 for QEMU's default, a coded error for anything else", () => {
    expect(tcgCacheMiB({})).toBe(32);
    expect(tcgCacheMiB({ SKIFF_TCG_CACHE_MIB: "128" })).toBe(128);
    expect(tcgCacheMiB({ SKIFF_TCG_CACHE_MIB: "0" })).toBeUndefined();
    for (const bad of ["-1", "1.5", "lots", "99999"]) {
      const err = errorOf(() => tcgCacheMiB({ SKIFF_TCG_CACHE_MIB: bad }));
      expect(err.code).toBe("ERR_SKIFF_USAGE");
      expect(err.place).toBe("SKIFF_TCG_CACHE_MIB");
      expect(err.hint).toMatch(/MiB/);
    }
  });

  it("uses KVM with the host CPU", () => {
    const args = toQemuArgs(plan({ accel: "kvm", cpus: 2 }));
    expect(pretty(args).split("\n").slice(0, 9)).toMatchInlineSnapshot(`
      [
        "-M microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on,acpi=on",
        "-nodefaults",
        "-no-user-config",
        "-display none",
        "-no-reboot",
        "-accel kvm",
        "-cpu host",
        "-smp 2",
        "-m 256M",
      ]
    `);
  });

  it("adds user networking with restrict and forwards", () => {
    const args = toQemuArgs(
      plan({
        network: {
          mode: "user",
          restrict: true,
          forwards: [
            { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, guestPort: 80 },
            { protocol: "udp", hostAddress: "", hostPort: 5353, guestPort: 53 },
          ],
        },
      }),
    );
    expect(pretty(args).split("\n").filter((l) => /netdev/.test(l))).toMatchInlineSnapshot(`
      [
        "-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp::5353-:53",
        "-device virtio-net-device,netdev=net0,mac=52:54:00:4b:5e:57",
      ]
    `);
  });

  it("adds guestfwd rules after the forwards, kept under restrict=on", () => {
    const guestForwards = [{ guestAddress: "10.0.2.100", guestPort: 80, hostAddress: "127.0.0.1", hostPort: 41234 }];
    const args = toQemuArgs(plan({ network: { mode: "user", restrict: true, forwards: [], guestForwards } }));
    expect(args[args.indexOf("-netdev") + 1]).toBe("user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:socat STDIO TCP:127.0.0.1:41234");
    expect(() => toQemuArgs(plan({ network: { mode: "user", restrict: true, forwards: [], guestForwards: [{ ...guestForwards[0]!, hostAddress: "::1" }] } }))).toThrow(/IPv4/);
    expect(() => toQemuArgs(plan({ network: { mode: "user", restrict: true, forwards: [], guestForwards: [{ ...guestForwards[0]!, hostPort: 0 }] } }))).toThrow(/out of range/);
  });

  it("adds open user networking without forwards", () => {
    const args = toQemuArgs(plan({ network: { mode: "user", restrict: false, forwards: [] } }));
    expect(args[args.indexOf("-netdev") + 1]).toBe("user,id=net0");
  });

  it("adds QEMU's own seccomp filter when jailed: no spawning, unless a guest forward runs socat", () => {
    const sandbox = (args: string[]) => args[args.indexOf("-sandbox") + 1];
    expect(toQemuArgs(plan())).not.toContain("-sandbox");
    expect(sandbox(toQemuArgs(plan({ sandbox: { spawn: false } })))).toBe("on,obsolete=deny,spawn=deny,elevateprivileges=deny,resourcecontrol=deny");
    expect(sandbox(toQemuArgs(plan({ sandbox: { spawn: true } })))).toBe("on,obsolete=deny,spawn=allow,elevateprivileges=allow,resourcecontrol=deny");
    const cloud = toQemuArgs(plan({ sandbox: { spawn: false }, cloud: { seedPath: `${dir}/seed.iso`, sshPort: 2222 } }));
    expect(sandbox(cloud)).toContain("spawn=deny");
    // The jailer detaches QEMU; QEMU's own -daemonize would fork past the filter.
    expect(cloud).not.toContain("-daemonize");
  });

  it("leaves out virtio-serial when there are no agent ports", () => {
    const args = toQemuArgs(plan({ agentPorts: [] }));
    expect(args).not.toContain("virtio-serial-device");
  });

  it("escapes commas inside option lists but not in verbatim paths", () => {
    const d = "/tmp/a,b";
    const args = toQemuArgs(
      plan({
        kernel: { path: `${d}/vmlinux`, cmdline: "console=ttyS0" },
        initrdPath: `${d}/boot.cpio`,
        rootDisk: { overlayPath: `${d}/root.qcow2` },
        console: { socketPath: `${d}/c.sock`, logPath: `${d}/c.log` },
        qmpSocketPath: `${d}/q.sock`,
        pidfilePath: `${d}/pid`,
        agentPorts: [{ name: "p0", socketPath: `${d}/a.sock` }],
      }),
    );
    expect(pretty(args)).toMatchInlineSnapshot(`
      "-M microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on,rtc=on,acpi=on
      -nodefaults
      -no-user-config
      -display none
      -no-reboot
      -accel tcg,thread=multi
      -cpu max
      -smp 1,maxcpus=2
      -m 256M
      -kernel /tmp/a,b/vmlinux
      -initrd /tmp/a,b/boot.cpio
      -append console=ttyS0 nr_cpus=1
      -chardev socket,id=console,path=/tmp/a,,b/c.sock,server=on,wait=off,logfile=/proc/self/fd/12,logappend=on
      -serial chardev:console
      -drive id=root,file=/tmp/a,,b/root.qcow2,format=qcow2,if=none,cache=writeback,discard=unmap
      -device virtio-blk-device,drive=root,serial=skiff-root
      -device virtio-rng-device
      -device virtio-balloon-device,free-page-reporting=on
      -device virtio-serial-device,max_ports=2
      -chardev socket,id=agent0,path=/tmp/a,,b/a.sock,server=on,wait=off
      -device virtserialport,chardev=agent0,name=p0
      -qmp unix:/tmp/a,,b/q.sock,server=on,wait=off
      -pidfile /tmp/a,b/pid"
    `);
  });

  it("rejects relative paths, newlines and over-long socket paths", () => {
    expect(errorOf(() => toQemuArgs(plan({ pidfilePath: "qemu.pid" }))).code).toBe("ERR_SKIFF_BAD_PATH");
    expect(errorOf(() => toQemuArgs(plan({ initrdPath: "/tmp/a\nb" }))).code).toBe("ERR_SKIFF_BAD_PATH");
    const long = `/${"x".repeat(100)}/qmp.sock`;
    const err = errorOf(() => toQemuArgs(plan({ qmpSocketPath: long })));
    expect(err.code).toBe("ERR_SKIFF_BAD_PATH");
    expect(err.message).toContain("110 bytes");
    expect(err.hint).toBeDefined();
  });

  it("rejects forwards QEMU 7.2 slirp cannot take", () => {
    const net = (hostAddress: string, hostPort = 80): LaunchPlan["network"] => ({
      mode: "user",
      restrict: true,
      forwards: [{ protocol: "tcp", hostAddress, hostPort, guestPort: 80 }],
    });
    expect(errorOf(() => toQemuArgs(plan({ network: net("::1") }))).place).toBe("network.forwards");
    expect(errorOf(() => toQemuArgs(plan({ network: net("127.0.0.1", 70000) }))).code).toBe("ERR_SKIFF_USAGE");
  });
});

describe("macAddress", () => {
  it("is stable, locally administered and unicast", () => {
    expect(macAddress("web")).toBe(macAddress("web"));
    expect(macAddress("web")).not.toBe(macAddress("db"));
    expect(macAddress("web")).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    const first = parseInt(macAddress("web").slice(0, 2), 16);
    expect(first & 0b10).toBe(0b10);
    expect(first & 0b01).toBe(0);
  });
});

describe("toQemuArgs with named networks", () => {
  const nics: LaunchPlan["nics"] = [
    { netdevId: "net1", mac: "52:54:00:aa:bb:01", backend: { kind: "mcast", group: "239.255.90.1", port: 47001 } },
    { netdevId: "net2", mac: "52:54:00:aa:bb:02", backend: { kind: "tap", ifname: "sk0123456789ab1", bridge: "skb-lan", fd: 3 } },
    { netdevId: "net3", mac: "52:54:00:aa:bb:03", backend: { kind: "unix-dgram", localPath: `${dir}/end-0.sock`, remotePath: `${dir}/end-1.sock` } },
  ];

  it("gives each NIC its netdev after the user NIC: multicast on loopback, a TAP by descriptor, a datagram pair", () => {
    const args = toQemuArgs(plan({ network: { mode: "user", restrict: true, forwards: [] }, nics }));
    const lines = pretty(args).split("\n").filter((l) => l.startsWith("-netdev") || l.startsWith("-device virtio-net"));
    expect(lines).toEqual([
      "-netdev user,id=net0,restrict=on",
      `-device virtio-net-device,netdev=net0,mac=${macAddress("web")}`,
      "-netdev socket,id=net1,mcast=239.255.90.1:47001,localaddr=127.0.0.1",
      "-device virtio-net-device,netdev=net1,mac=52:54:00:aa:bb:01",
      `-netdev tap,id=net2,fd=3`,
      "-device virtio-net-device,netdev=net2,mac=52:54:00:aa:bb:02",
      `-netdev dgram,id=net3,local.type=unix,local.path=${dir}/end-0.sock,remote.type=unix,remote.path=${dir}/end-1.sock`,
      "-device virtio-net-device,netdev=net3,mac=52:54:00:aa:bb:03",
    ]);
  });

  it("uses PCI NICs on a cloud image's q35", () => {
    const args = toQemuArgs(plan({ agentPorts: [], cloud: { seedPath: `${dir}/seed.iso`, sshPort: 40022 }, nics: nics.slice(0, 1) }));
    expect(args).toContain("virtio-net-pci,netdev=net1,mac=52:54:00:aa:bb:01");
  });
});

describe("toQemuArgs for a cloud image", () => {
  const cloudPlan = (overrides: Partial<LaunchPlan> = {}) =>
    plan({
      memoryMiB: 1024,
      agentPorts: [],
      network: { mode: "user", restrict: true, forwards: [] },
      cloud: { seedPath: `${dir}/seed.iso`, sshPort: 40022 },
      ...overrides,
    });

  it("boots q35 from the overlay with the NoCloud seed and SSH on 127.0.0.1", () => {
    expect(pretty(toQemuArgs(cloudPlan()))).toMatchInlineSnapshot(`
      "-M q35
      -nodefaults
      -no-user-config
      -display none
      -accel tcg,thread=multi
      -cpu max
      -smp 1,maxcpus=2
      -m 1024M
      -chardev socket,id=console,path=/var/lib/skiff/vms/web/console.sock,server=on,wait=off,logfile=/proc/self/fd/12,logappend=on
      -serial chardev:console
      -drive file=/var/lib/skiff/vms/web/root.qcow2,if=virtio,format=qcow2,cache=writeback,discard=unmap
      -drive file=/var/lib/skiff/vms/web/seed.iso,if=virtio,format=raw,readonly=on
      -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22
      -device virtio-net-pci,netdev=net0,mac=52:54:00:4b:5e:57
      -device virtio-rng-pci
      -device virtio-balloon-pci,free-page-reporting=on
      -qmp unix:/var/lib/skiff/vms/web/qmp.sock,server=on,wait=off
      -pidfile /var/lib/skiff/vms/web/qemu.pid"
    `);
  });

  it("keeps user forwards beside the SSH one and drops restrict=on when not asked", () => {
    const args = toQemuArgs(
      cloudPlan({ network: { mode: "user", restrict: false, forwards: [{ protocol: "tcp", hostAddress: "", hostPort: 8080, guestPort: 80 }] } }),
    );
    expect(args).toContain("user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22,hostfwd=tcp::8080-:80");
    expect(args).not.toContain("-kernel");
  });

  it("refuses a relative seed path", () => {
    expect(errorOf(() => toQemuArgs(cloudPlan({ cloud: { seedPath: "seed.iso", sshPort: 40022 } }))).code).toBe("ERR_SKIFF_BAD_PATH");
  });
});

describe("toQemuArgs with mounts and a kernel of the VM's own", () => {
  it("gives bind mounts a 9p share and volumes a disk with a serial, read-only where asked", () => {
    const args = toQemuArgs(
      plan({
        mounts: [
          { kind: "9p", tag: "skiff0", hostPath: "/home/me/src,v2", target: "/src", readOnly: false, securityModel: "passthrough" },
          { kind: "disk", serial: "skiff-vol0", diskPath: "/var/lib/skiff/volumes/data/disk.ext4", target: "/data", readOnly: false },
          { kind: "9p", tag: "skiff1", hostPath: "/etc/app", target: "/etc/app", readOnly: true, securityModel: "none" },
          { kind: "disk", serial: "skiff-vol1", diskPath: "/var/lib/skiff/volumes/logs/disk.ext4", target: "/logs", readOnly: true },
        ],
      }),
    );
    const text = pretty(args);
    expect(text.slice(text.indexOf("-drive id=root"), text.indexOf("-device virtio-rng-device"))).toMatchInlineSnapshot(`
      "-drive id=root,file=/var/lib/skiff/vms/web/root.qcow2,format=qcow2,if=none,cache=writeback,discard=unmap
      -device virtio-blk-device,drive=root,serial=skiff-root
      -fsdev local,id=fs0,path=/home/me/src,,v2,security_model=mapped-xattr
      -device virtio-9p-device,fsdev=fs0,mount_tag=skiff0
      -drive id=vol1,file=/var/lib/skiff/volumes/data/disk.ext4,format=raw,if=none,cache=writeback,discard=unmap
      -device virtio-blk-device,drive=vol1,serial=skiff-vol0
      -fsdev local,id=fs2,path=/etc/app,security_model=mapped-xattr,readonly=on
      -device virtio-9p-device,fsdev=fs2,mount_tag=skiff1
      -drive id=vol3,file=/var/lib/skiff/volumes/logs/disk.ext4,format=raw,if=none,cache=writeback,discard=unmap,readonly=on
      -device virtio-blk-device,drive=vol3,serial=skiff-vol1
      "
    `);
  });

  it("attaches a restored VM's clone of a volume as qcow2, at the drive id and serial the volume had", () => {
    const clone = { kind: "disk", serial: "skiff-vol0", diskPath: "/var/lib/skiff/vms/web/volumes/0.qcow2", format: "qcow2", target: "/data", readOnly: false } as const;
    const args = toQemuArgs(plan({ mounts: [clone] }));
    expect(args).toContain("id=vol0,file=/var/lib/skiff/vms/web/volumes/0.qcow2,format=qcow2,if=none,cache=writeback,discard=unmap");
    expect(args).toContain("virtio-blk-device,drive=vol0,serial=skiff-vol0");
  });

  it("refuses a relative share path and tags or serials QEMU would misread", () => {
    const share = { kind: "9p", tag: "skiff0", hostPath: "src", target: "/src", readOnly: false, securityModel: "none" } as const;
    expect(errorOf(() => toQemuArgs(plan({ mounts: [share] }))).code).toBe("ERR_SKIFF_BAD_PATH");
    expect(() => toQemuArgs(plan({ mounts: [{ ...share, hostPath: "/src", tag: "a,b" }] }))).toThrow(/mount tag/);
    expect(() =>
      toQemuArgs(plan({ mounts: [{ kind: "disk", serial: "x".repeat(21), diskPath: "/d", target: "/d", readOnly: false }] })),
    ).toThrow(/serial/);
  });

  it("boots the VM's kernel and appends its args after skiff's own words, tsc_early_khz included", () => {
    const args = toQemuArgs(plan({ kernel: { path: "/boot/vmlinux-virtio", cmdline: "console=ttyS0 quiet", extraArgs: ["svc.start=fw", "loglevel=7"] }, tscKhz: 2000000 }));
    expect(args[args.indexOf("-kernel") + 1]).toBe("/boot/vmlinux-virtio");
    expect(args[args.indexOf("-append") + 1]).toBe("console=ttyS0 quiet tsc_early_khz=2000000 nr_cpus=1 svc.start=fw loglevel=7");
  });

  it("refuses kernel args with a newline or NUL", () => {
    for (const bad of ["a\nb", "x\0", ""]) {
      const err = errorOf(() => toQemuArgs(plan({ kernel: { path: "/k", cmdline: "console=ttyS0", extraArgs: [bad] } })));
      expect(err.code).toBe("ERR_SKIFF_USAGE");
      expect(err.place).toBe("kernel.args");
    }
  });
});

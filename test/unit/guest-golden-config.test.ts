/**
 * Golden tests of the per-VM config archive: what guestConfigArchive
 * (src/guest/initramfs.ts) puts in the initrd — /skiff/config, /skiff/env,
 * /skiff/hosts — unpacked as the kernel does and read by init's own parsers
 * (guest/config.c, guest/request.c) compiled on the host. Each case must
 * mean to the guest exactly what the host was asked.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestConfigArchive, type GuestConfig } from "../../src/guest/initramfs.js";
import { GoldenHarness, type ParsedConfig } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
const mac = (i: number) => `52:54:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

const base: GuestConfig = {
  hostname: "web-1",
  agentPorts: 8,
  env: { FOO: "bar" },
  network: {
    nics: [
      { name: "eth0", network: "user", driver: "user", mac: mac(1), address: "10.0.2.15/24" },
      { name: "eth1", network: "lan", driver: "private", mac: mac(2), address: "10.90.0.2/24" },
    ],
    gateway: "10.0.2.2",
    dns: ["10.0.2.3", "192.0.2.53"],
    hosts: "127.0.0.1\tlocalhost\n10.90.0.2\tweb-1\n10.90.0.3\tdb\n",
  },
  authorizedKey: "ssh-ed25519 AAAA test",
  hostKey: Buffer.from("key"),
};

/** What the guest should understand of `config`. */
function meaning(config: GuestConfig): ParsedConfig {
  const net = config.network;
  return {
    hostname: config.hostname,
    debug: config.debug === true,
    agentPorts: config.agentPorts,
    nics: net.nics.map((n) => ({ mac: n.mac, name: n.name, addr: n.address })),
    gateway: net.gateway ?? null,
    resolvConf: net.dns.length === 0 ? null : net.dns.map((ns) => `nameserver ${ns}\n`).join(""),
    mounts: (config.mounts ?? []).map((m) => ({ fs: m.fs, source: m.source, mode: m.readOnly ? "ro" : "rw", target: m.target })),
    main:
      config.main === undefined
        ? null
        : {
            restart: config.main.restart === "unless-stopped" ? "always" : config.main.restart,
            request: {
              user: config.main.request.user ?? null,
              cwd: config.main.request.cwd ?? null,
              pidfile: null,
              env: Object.entries(config.main.request.env ?? {}).map(([k, v]) => `${k}=${v}`),
              argv: config.main.request.argv,
            },
          },
    env: Object.entries(config.env).map(([k, v]) => `${k}=${v}`),
    hosts: Buffer.from(net.hosts),
  };
}

const noNetwork = { nics: [], dns: [], hosts: "" };

const cases: [string, GuestConfig][] = [
  ["ordinary", base],
  ["empty: no network, env, mounts or main command", { ...base, env: {}, network: noNetwork }],
  ["debug on, one agent port", { ...base, debug: true, agentPorts: 1 }],
  [
    "mounts: 9p and ext4, read-only, targets with spaces and unicode",
    {
      ...base,
      mounts: [
        { fs: "9p", source: "skiff0", target: "/src", readOnly: false },
        { fs: "ext4", source: "skiff-vol0", target: "/var/lib/my data", readOnly: true },
        { fs: "9p", source: "skiff1", target: "/srv/ünïcødé  two spaces ", readOnly: false },
      ],
    },
  ],
  ...(["no", "on-failure", "always", "unless-stopped"] as const).map((restart): [string, GuestConfig] => [
    `main command, restart ${restart}`,
    { ...base, main: { restart, request: { argv: ["sh", "-c", "echo hi; exit 3"], user: "app", cwd: "/" } } },
  ]),
  [
    "main command with quotes, newlines, unicode and env",
    {
      ...base,
      main: { restart: "always", request: { argv: ["sh", "-c", `printf '%s\\n' "$X"\necho 'two'`, "ü 🚀", ""], env: { X: "a\nb" }, cwd: "/srv/my dir" } },
    },
  ],
  [
    "env values with quotes, '=', spaces and unicode",
    { ...base, env: { Q: `'"\`$x`, EQ: "a=b==c", SP: "  lead and trail  ", U: "grüße 👋", EMPTY: "" } },
  ],
  [
    "env values with newlines and control characters (once silently left out)",
    { ...base, env: { PEM: "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n", CRLF: "a\r\nb", CTRL: "\u0001\u001f\u007f", "lower.dotted-name": "x" } },
  ],
  ["env past 64 KiB (once cut at 64 KiB)", { ...base, env: Object.fromEntries(many(3000, (i) => [`BIG_${i}`, "v".repeat(40)])) }],
  ["one env value of 200 KB", { ...base, env: { HUGE: "x".repeat(200_000) } }],
  ["hosts past 64 KiB (once cut at 64 KiB)", { ...base, network: { ...base.network, hosts: many(5000, (i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}\tpeer-number-${i}`).join("\n") + "\n" } }],
  ["many nameservers (once cut at 512 bytes of resolv.conf)", { ...base, network: { ...base.network, dns: many(40, (i) => `fd00::${i.toString(16)}:53`) } }],
  ["hosts with many peers and unicode", { ...base, network: { ...base.network, hosts: many(300, (i) => `10.90.${i >> 8}.${i & 255}\tpeer-${i} ü${i}`).join("\n") + "\n" } }],
  [
    "many entries: 16 NICs, 16 mounts, 200 env variables",
    {
      ...base,
      env: Object.fromEntries(many(200, (i) => [`VAR_${i}`, `value ${i}`])),
      network: {
        ...base.network,
        nics: many(16, (i) => ({ name: `eth${i}`, network: `n${i}`, driver: "private" as const, mac: mac(i), address: `10.${i}.0.2/24` })),
      },
      mounts: many(16, (i) => ({ fs: "ext4" as const, source: `skiff-vol${i}`, target: `/data/${i}`, readOnly: i % 2 === 0 })),
    },
  ],
  [
    "maximal: long hostname, IPv6 nameservers, main command at the SSH limit",
    {
      ...base,
      hostname: "h".repeat(63),
      network: { ...base.network, dns: ["2001:db8::53", "fd00:1234:5678:9abc:def0:1234:5678:9abc", "10.0.2.3"] },
      main: { restart: "on-failure", request: { argv: ["echo", "x".repeat(6000)] } },
    },
  ],
];

describe("the config archive: host encoder → init's parsers", () => {
  it.each(cases)("%s", (_name, config) => {
    const out = harness.config(guestConfigArchive(config));
    expect(out.stderr).toBe("");
    expect(out.status).toBe(0);
    expect(out.parsed).toEqual(meaning(config));
  });
});

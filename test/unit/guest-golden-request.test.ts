/**
 * Golden tests of exec requests: what encodeExecRequest (src/guest/exec-request.ts)
 * sends as the SSH command, read by skiff-shell's own parser (guest/request.c)
 * compiled on the host. Each case must come out of the guest exactly as the
 * host was asked to send it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeExecRequest, type EncodableRequest } from "../../src/guest/exec-request.js";
import { GoldenHarness, type ParsedRequest } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

/** What the guest should understand of `req`: the host's meaning, record by record. */
function meaning(req: EncodableRequest): ParsedRequest {
  return {
    user: req.user ?? null,
    cwd: req.cwd ?? null,
    pidfile: req.pidfile ?? null,
    env: Object.entries(req.env ?? {}).map(([k, v]) => `${k}=${v}`),
    argv: req.argv,
  };
}

const many = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));

const cases: [string, EncodableRequest][] = [
  ["ordinary", { argv: ["ls", "-l", "/tmp"], env: { LANG: "C.UTF-8" }, user: "app", cwd: "/srv", pidfile: "agent0-1" }],
  ["argv alone", { argv: ["true"] }],
  ["empty strings", { argv: ["", ""], env: { EMPTY: "" }, user: "", cwd: "" }],
  ["numeric user and group", { argv: ["id"], user: "1000:50" }],
  [
    "quotes and shell syntax, untouched",
    { argv: ["sh", "-c", `echo "$A" 'b c' $((1+2)) \`x\` \\ ; | & > <`, "a=b", "--x=\"y\""], env: { A: `'"\\$` } },
  ],
  ["newlines, tabs and CR", { argv: ["printf", "line1\nline2\n", "\t\r\n"], env: { MULTI: "a\nb\r\nc" }, cwd: "/dir\nwith newline" }],
  ["unicode", { argv: ["echo", "ünïcødé", "✓", "🚀", "日本語"], env: { GRÜSSE: "grüße 👋" }, user: "jöhn", cwd: "/srv/ü dir" }],
  [
    "binary-ish bytes",
    { argv: ["x", "\u0001\u0002\u001f\u007f", "\u00ff\u00fe", "=", "==", "a=", "e=K=V", "u=root"], env: { B: "\u0001=\u007f" } },
  ],
  ["values that look like records", { argv: ["a=b", "u=root", "w=/", "p=x", "e=X=1"], env: { X: "a=1", Y: "u=2" } }],
  ["base64-ish and long values", { argv: ["echo", "x".repeat(4000), "+/=-_"] }],
  ["many arguments (the most the guest takes)", { argv: many(1023, (i) => String(i % 10)) }],
  ["many variables (the most the guest takes)", { argv: ["env"], env: Object.fromEntries(many(255, (i) => [`V${i}`, String(i)])) }],
  [
    "maximal: every field, most arguments and variables at once",
    { argv: many(1023, (i) => (i === 0 ? "cmd" : "a")), env: Object.fromEntries(many(255, (i) => [`E${i}`, ""])), user: "u:g", cwd: "/", pidfile: "agent15-63" },
  ],
];

describe("exec requests: host encoder → guest parser", () => {
  it.each(cases)("%s", (_name, req) => {
    const command = encodeExecRequest(req);
    const out = harness.shell(command);
    expect(out.stderr).toBe("");
    expect(out.status).toBe(0);
    expect(out.parsed).toEqual({ command, sftp: false, request: meaning(req) });
  });

  it("tells a login (no command), sftp-server and a plain command line apart from a request", () => {
    const empty = { user: null, cwd: null, pidfile: null, env: [], argv: [] };
    expect(harness.shell().parsed).toEqual({ command: null, sftp: false, request: empty });
    expect(harness.shell("/usr/lib/sftp-server").parsed).toEqual({ command: "/usr/lib/sftp-server", sftp: true, request: empty });
    expect(harness.shell("echo hi; exit 3").parsed).toEqual({ command: "echo hi; exit 3", sftp: false, request: empty });
  });
});

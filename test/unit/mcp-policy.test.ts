/**
 * The MCP server's access policy (src/mcp/policy.ts), attacked: a table of
 * bypass attempts, each of which must be refused with its reason, and the
 * parsing and inheritance rules of the `mcp:` key.
 */
import { describe, expect, it } from "vitest";
import {
  checkExec,
  checkNewVmName,
  checkResolvedBinary,
  checkResolvedUser,
  checkTool,
  parsePolicy,
  projectPolicy,
  ruleFor,
  type ExecAsk,
  type Refusal,
} from "../../src/mcp/policy.js";
import { resolveTarget } from "../../src/mcp/target.js";
import type { VmInfo } from "../../src/engine/info.js";

const policy = parsePolicy(
  {
    hide_tools: ["network_tcpdump"],
    allow_tools: ["*"],
    vms: {
      web: { allow_tools: ["vm_exec", "vm_exec_bg", "vm_bulk_exec"], allow_binaries: ["ls", "cat", "find", "awk", "tar", "id"], deny_root: true },
      none: { allow_tools: [] },
    },
  },
  "policy.yml",
);
const web = ruleFor(policy, { name: "web" });
const passwd = "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nsneaky:x:1001:0::/home/s:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
const group = "root:x:0:\nuser:x:1000:\nwheel:x:0:\nnogroup:x:65534:\n";

const user = "user";
/** [what the attacker tries, the ask on VM web, the reason it must be refused for]. */
const execAttempts: [string, ExecAsk, RegExp][] = [
  ["a shell command line", { argv: ["sh", "-c", "ls"], user }, /sh is not in this VM's allow_binaries/],
  ["bash -c", { argv: ["bash", "-c", "ls"], user }, /bash is not in/],
  ["env wrapper", { argv: ["env", "X=1", "sh"], user }, /env is not in/],
  ["busybox sh", { argv: ["busybox", "sh"], user }, /busybox is not in/],
  ["/bin/../bin/sh", { argv: ["/bin/../bin/sh"], user }, /unnormalised path/],
  ["/bin/../bin/ls: an allowed name behind ..", { argv: ["/bin/../bin/ls"], user }, /unnormalised path/],
  ["./sh", { argv: ["./sh"], user }, /relative or unnormalised/],
  ["./ls: a relative path to an allowed name", { argv: ["./ls"], user }, /relative or unnormalised/],
  ["a double slash", { argv: ["/bin//ls"], user }, /unnormalised/],
  ["a trailing slash", { argv: ["/bin/ls/"], user }, /unnormalised|not a plain/],
  ["a Cyrillic lookalike of ls", { argv: ["ӏs"], user }, /not a plain ASCII program name/],
  ["a fullwidth lookalike of cat", { argv: ["ｃａｔ"], user }, /not a plain ASCII/],
  ["a case variant", { argv: ["LS"], user }, /LS is not in/],
  ["a trailing space", { argv: ["ls "], user }, /not a plain ASCII/],
  ["a NUL byte that cuts the name", { argv: ["ls\0sh"], user }, /NUL byte/],
  ["a NUL in an argument", { argv: ["ls", "/\0x"], user }, /NUL byte/],
  ["a NUL in the user", { argv: ["ls"], user: "user\0root" }, /NUL byte/],
  ["empty argv", { argv: [], user }, /empty argv/],
  ["an empty program", { argv: [""], user }, /empty argv/],
  ["find -exec", { argv: ["find", "/", "-exec", "sh", ";"], user }, /find -exec would run another program/],
  ["find -execdir", { argv: ["find", ".", "-execdir", "sh", ";"], user }, /-execdir/],
  ["find -ok", { argv: ["find", ".", "-ok", "sh", ";"], user }, /-ok/],
  ["awk system()", { argv: ["awk", 'BEGIN{system("sh")}'], user }, /awk .* would run another program/],
  ["awk print to a pipe", { argv: ["awk", 'BEGIN{print "id" | "sh"}'], user }, /awk/],
  ["awk program file", { argv: ["awk", "-f", "/tmp/x.awk"], user }, /awk/],
  ["tar --to-command", { argv: ["tar", "-xf", "a.tar", "--to-command=sh"], user }, /tar --to-command/],
  ["tar -I", { argv: ["tar", "-I", "sh", "-xf", "a"], user }, /tar -I/],
  ["tar --checkpoint-action", { argv: ["tar", "--checkpoint-action=exec=sh", "-cf", "/dev/null", "/"], user }, /checkpoint-action/],
  ["LD_PRELOAD through env", { argv: ["ls"], user, env: { LD_PRELOAD: "/tmp/evil.so" } }, /environment variables are refused/],
  ["PATH through env", { argv: ["ls"], user, env: { PATH: "/tmp/evil" } }, /environment variables/],
  ["no user: the default is root", { argv: ["ls"] }, /no user given/],
  ["root", { argv: ["ls"], user: "root" }, /user root is root/],
  ["uid 0", { argv: ["ls"], user: "0" }, /user 0 is root/],
  ["uid 00", { argv: ["ls"], user: "00" }, /user 00 is root/],
  ["0:0", { argv: ["ls"], user: "0:0" }, /user 0 is root/],
  ["a user with group root", { argv: ["ls"], user: "user:root" }, /group root is root/],
  ["a user with gid 0", { argv: ["ls"], user: "user:0" }, /group 0 is root/],
  ["'root ' with a space", { argv: ["ls"], user: "root " }, /not a plain name/],
  ["ROOT in capitals", { argv: ["ls"], user: "ROOT" }, /not a plain name/],
  ["a Cyrillic rооt", { argv: ["ls"], user: "rооt" }, /not a plain name/],
  ["+0", { argv: ["ls"], user: "+0" }, /not a plain name/],
  ["-0", { argv: ["ls"], user: "-0" }, /not a plain name/],
  ["0x0", { argv: ["ls"], user: "0x0" }, /not a plain name|0x0/],
  ["three fields", { argv: ["ls"], user: "user:user:root" }, /not a plain name/],
  ["uid 2^32, which the guest's uid_t makes 0", { argv: ["ls"], user: "4294967296" }, /32-bit id/],
  ["uid -1 as 4294967295, which setuid takes as no change", { argv: ["ls"], user: "4294967295" }, /is root/],
  ["gid 2^32", { argv: ["ls"], user: "user:4294967296" }, /group 4294967296 is root/],
];

function refusal(r: Refusal | undefined): string {
  expect(r, "must be refused").toBeDefined();
  return r!.reason;
}

describe("bypass attempts on a VM with allow_binaries and deny_root", () => {
  it("has at least 30 attempts in the table", () => expect(execAttempts.length).toBeGreaterThanOrEqual(30));

  it.each(execAttempts)("%s: refused", (_what, ask, reason) => {
    const r = checkExec(web, ask);
    expect(refusal(r)).toMatch(reason);
    expect(r!.hint).not.toBe("");
  });

  it("lets the allowed program run as a non-root user", () => {
    expect(checkExec(web, { argv: ["ls", "-l", "/"], user: "user" })).toBeUndefined();
    expect(checkExec(web, { argv: ["/usr/bin/ls"], user: "1000:1000" })).toBeUndefined();
    expect(checkExec(web, { argv: ["find", "/tmp", "-name", "x"], user: "nobody" })).toBeUndefined();
  });

  it("in the guest: uid 0 by another name, a group of gid 0, an unknown user", () => {
    expect(refusal(checkResolvedUser("toor", passwd, group))).toMatch(/uid 0/);
    expect(refusal(checkResolvedUser("odd", "odd:x:0abc:1::/:/bin/sh\n", group))).toMatch(/uid 0/);
    expect(refusal(checkResolvedUser("odd", "odd:x:5:junk::/:/bin/sh\n", group))).toMatch(/gid 0/);
    expect(refusal(checkResolvedUser("sneaky", passwd, group))).toMatch(/gid 0/);
    expect(refusal(checkResolvedUser("user:wheel", passwd, group))).toMatch(/gid 0/);
    expect(refusal(checkResolvedUser("ghost", passwd, group))).toMatch(/not in the image's \/etc\/passwd/);
    expect(checkResolvedUser("user", passwd, group)).toBeUndefined();
    expect(checkResolvedUser("1000:1000", passwd, group)).toBeUndefined();
  });

  it("in the guest: a symlink named like an allowed program runs what it points at", () => {
    expect(refusal(checkResolvedBinary("ls", "/usr/local/bin/ls", "/usr/bin/dash"))).toMatch(/resolves to \/usr\/bin\/dash/);
    expect(refusal(checkResolvedBinary("cat", "/tmp/cat", "/bin/bash"))).toMatch(/not a program named cat/);
    expect(refusal(checkResolvedBinary("id", "", ""))).toMatch(/not found/);
    // busybox's applets are symlinks to it: it runs the applet argv[0] names, which is the allowed one.
    expect(checkResolvedBinary("ls", "/bin/ls", "/bin/busybox")).toBeUndefined();
    expect(checkResolvedBinary("ls", "/usr/bin/ls", "/usr/bin/ls")).toBeUndefined();
  });
});

describe("tools", () => {
  it("hide_tools hides a tool from every VM, even one that allows it", () => {
    expect(refusal(checkTool(policy, "network_tcpdump"))).toMatch(/hidden by the policy/);
    expect(refusal(checkTool(policy, "network_tcpdump", { allowTools: ["network_tcpdump"] }))).toMatch(/hidden/);
  });

  it("allow_tools: absent all, [\"*\"] all, [] none, a list only its tools", () => {
    expect(checkTool(policy, "vm_ps", ruleFor(policy, { name: "other" }))).toBeUndefined();
    expect(checkTool(parsePolicy({}, "p"), "vm_ps", {})).toBeUndefined();
    expect(refusal(checkTool(policy, "vm_ps", ruleFor(policy, { name: "none" })))).toMatch(/allow_tools \(none\)/);
    expect(refusal(checkTool(policy, "vm_ps", web))).toMatch(/vm_ps is not in this VM's allow_tools/);
    expect(checkTool(policy, "vm_exec", web)).toBeUndefined();
  });

  it("a tool name that is not one of ours, or a lookalike, is refused", () => {
    expect(refusal(checkTool(policy, "vm_ехес", web))).toMatch(/no tool named/);
    expect(refusal(checkTool(policy, "VM_EXEC", web))).toMatch(/no tool named/);
  });

  it("a VM reached by address or hostname is the same VM, with its own rule", () => {
    const vm = (name: string, hostname: string, address: string) => ({ name, hostname, interfaces: [{ address: `${address}/24` }] }) as unknown as VmInfo;
    const vms = [vm("web", "web.lan", "10.90.0.2"), vm("db", "db", "10.90.0.3"), vm("a", "a", "10.0.2.15"), vm("b", "b", "10.0.2.15")];
    expect(resolveTarget("10.90.0.2", vms).name).toBe("web");
    expect(resolveTarget("web.lan", vms).name).toBe("web");
    expect(resolveTarget("web", vms).name).toBe("web");
    expect(() => resolveTarget("10.0.2.15", vms)).toThrow(/2 VMs: a, b/);
    expect(() => resolveTarget("10.90.0.9", vms)).toThrow(/no VM named/);
  });

  it("a new VM may not take a name whose rule differs from the one the call runs under", () => {
    expect(refusal(checkNewVmName(policy, "web", policy.defaults))).toMatch(/another rule/);
    expect(checkNewVmName(policy, "scratch", policy.defaults)).toBeUndefined();
    // Forking web (strict) into a clone that would only get the defaults: refused.
    expect(refusal(checkNewVmName(policy, "web-fork-1", web))).toMatch(/another rule/);
  });
});

describe("parsing and inheritance", () => {
  it("per-VM settings override the defaults key by key; absent ones inherit", () => {
    const p = parsePolicy({ deny_root: true, allow_binaries: ["ls"], vms: { a: { allow_binaries: ["cat"] }, b: { deny_root: false } } }, "p");
    expect(ruleFor(p, { name: "a" })).toEqual({ denyRoot: true, allowBinaries: ["cat"] });
    expect(ruleFor(p, { name: "b" })).toEqual({ denyRoot: false, allowBinaries: ["ls"] });
    expect(ruleFor(p, { name: "c" })).toEqual({ denyRoot: true, allowBinaries: ["ls"] });
  });

  it("a project: the service's rule under the VM's own, hide_tools from anywhere is global", () => {
    const p = projectPolicy({ vms: { "app-web-1": { deny_root: false } } }, new Map([["web", { deny_root: true, allow_tools: ["vm_exec"], hide_tools: ["vm_fork"] }]]), "skiff.yml");
    expect(ruleFor(p, { name: "app-web-2", service: "web" })).toEqual({ denyRoot: true, allowTools: ["vm_exec"] });
    expect(ruleFor(p, { name: "app-web-1", service: "web" }).denyRoot).toBe(false);
    expect(p.hideTools.has("vm_fork")).toBe(true);
  });

  it.each([
    [{ hide_tools: ["vm_exce"] }, /no tool named "vm_exce"/],
    [{ allow_tools: "vm_exec" }, /must be a list/],
    [{ allow_binaries: ["/bin/ls"] }, /is a path/],
    [{ deny_root: "yes" }, /true or false/],
    [{ deny_roots: true }, /unknown key "deny_roots"/],
    [{ vms: { a: { hide_tools: ["helo"] } } }, /hide_tools is global/],
    [{ vms: ["a"] }, /must be a map/],
  ])("refuses %j", (raw, message) => {
    expect(() => parsePolicy(raw, "p")).toThrow(message);
  });

  it("warns when a rule promises less than it seems to", () => {
    const p = parsePolicy({ allow_binaries: ["ls", "python3"] }, "p");
    expect(p.warnings.join("\n")).toMatch(/python3, which runs other programs/);
    expect(p.warnings.join("\n")).toMatch(/without deny_root/);
  });
});

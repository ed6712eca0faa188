/**
 * The MCP server's access policy, as Pontoon documents its `mcp:` key, and
 * every decision on it. Pure: no I/O, so each rule is table-tested
 * (test/unit/mcp-policy.test.ts) and the tool handlers only ask.
 *
 * - `hide_tools` (global): the tool is not listed and is refused if called.
 * - `allow_tools` (per VM): absent = unrestricted, `["*"]` = all, `[]` = none.
 * - `allow_binaries` (per VM): the path-stripped name of the program that
 *   vm_exec, vm_exec_bg and vm_bulk_exec start.
 * - `deny_root` (per VM): nothing runs as root (uid 0, or group 0).
 *
 * Per-VM settings (`vms: {NAME: …}` of a policy file, a project service's
 * `mcp`) override the defaults (the top-level keys) key by key; absent
 * ones inherit. The checks here are the half that needs no guest; guest.ts
 * resolves the program and the user in the guest and hands the answers to
 * checkResolvedBinary and checkResolvedUser below.
 *
 * What allow_binaries promises: the program that starts is one whose name
 * is on the list, found on the VM's PATH and resolved through symlinks in
 * the guest — never a shell slipped in by a path, a symlink, the
 * environment or a wrapper (env, busybox, sh -c). What it cannot promise:
 * what an allowed program does with its arguments. The usual ways to run
 * another program through an argument (find -exec, awk system(), tar
 * --to-command) are refused; an allowed interpreter or wrapper (listed in
 * `launchers`) runs anything, and loading such a policy warns so.
 */
import { posix } from "node:path";
import { SkiffError } from "../pure.js";
import { globalTools, isToolName, type ToolName } from "./names.js";

export interface VmRule {
  /** Absent: every tool. */
  allowTools?: readonly string[];
  /** Absent: every program. */
  allowBinaries?: readonly string[];
  denyRoot?: boolean;
}

export interface McpPolicy {
  hideTools: ReadonlySet<string>;
  /** The top-level keys: every VM's, and the rule of tools without a VM. */
  defaults: VmRule;
  /** By VM name (`vms:` of a policy file or of the top-level `mcp:` key). */
  vms: ReadonlyMap<string, VmRule>;
  /** By project service (a service's `mcp:`, the file's `defaults.mcp` under it). */
  services: ReadonlyMap<string, VmRule>;
  /** Rules that hold less than they seem to (printed by `skiff mcp` on stderr). */
  warnings: string[];
}

/** A refusal: why, in one line, and what the caller may do instead. */
export interface Refusal {
  reason: string;
  hint: string;
}

export const emptyPolicy: McpPolicy = { hideTools: new Set(), defaults: {}, vms: new Map(), services: new Map(), warnings: [] };

/** Programs whose job is to run other programs: allowing one allows them all. */
export const launchers: ReadonlySet<string> = new Set([
  "sh", "ash", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "toybox",
  "env", "xargs", "nice", "nohup", "setsid", "timeout", "stdbuf", "chroot", "time", "watch", "flock", "ionice", "taskset", "chrt",
  "unshare", "nsenter", "runuser", "setpriv", "capsh", "su", "sudo", "doas", "strace", "ltrace", "gdb", "script", "expect",
  "perl", "python", "python2", "python3", "ruby", "node", "nodejs", "lua", "php", "tclsh", "wish", "guile", "ssh", "make",
  "vi", "vim", "nvim", "ex", "ed", "less", "more", "man", "git", "rsync", "parallel", "run-parts", "start-stop-daemon", "systemd-run",
]);

/** Multi-call binaries pick what they run by argv[0]'s name, which skiff sets to the allowed name. */
const multicall: ReadonlySet<string> = new Set(["busybox", "toybox"]);

/** A binary name: ASCII letters, digits, `._+-`, not starting with `-` or `.`. */
const binaryName = /^[A-Za-z0-9_+][A-Za-z0-9._+-]{0,254}$/;
/** A user or group the way deny_root accepts it: a portable name or a number. */
const portableName = /^[a-z_][a-z0-9_-]{0,31}$/;
const numericId = /^[0-9]{1,10}$/;

type Raw = Record<string, unknown>;

/** The `mcp:` key or a `--policy` file (the same shape, with `vms:`). `source` names it in errors. */
export function parsePolicy(raw: unknown, source: string): McpPolicy {
  if (raw === undefined || raw === null) return emptyPolicy;
  const top = mapping(raw, source);
  const known = ["hide_tools", "allow_tools", "allow_binaries", "deny_root", "vms"];
  unknownKeys(top, known, source);
  const hideTools = new Set(toolList(top.hide_tools, `${source}: hide_tools`, false));
  const vms = new Map<string, VmRule>();
  if (top.vms !== undefined && top.vms !== null) {
    for (const [name, value] of Object.entries(mapping(top.vms, `${source}: vms`))) {
      const place = `${source}: vms.${name}`;
      if (isRaw(value) && "hide_tools" in value) policyError(`${place}: hide_tools is global`, "write hide_tools at the top level: it hides a tool from the whole server");
      vms.set(name, vmRule(value ?? {}, place));
    }
  }
  const policy: McpPolicy = { hideTools, defaults: vmRule(withoutKeys(top, ["hide_tools", "vms"]), source), vms, services: new Map(), warnings: [] };
  policy.warnings.push(...warningsOf(policy));
  return policy;
}

/**
 * A project's policy: its top-level `mcp:` (as a policy file) and each
 * service's `mcp:` block. A hide_tools written in a service (pontoon's
 * `defaults.mcp` lands in every service) hides the tool for the whole
 * server: hiding is global, and the stricter reading is the safe one.
 */
export function projectPolicy(top: unknown, services: ReadonlyMap<string, unknown>, source: string): McpPolicy {
  const base = parsePolicy(top, `${source}: mcp`);
  const hideTools = new Set(base.hideTools);
  const rules = new Map<string, VmRule>();
  for (const [service, block] of services) {
    if (block === undefined || block === null) continue;
    const place = `${source}: services.${service}.mcp`;
    const m = mapping(block, place);
    for (const t of toolList(m.hide_tools, `${place}.hide_tools`, false)) hideTools.add(t);
    rules.set(service, vmRule(withoutKeys(m, ["hide_tools"]), place));
  }
  const policy: McpPolicy = { ...base, hideTools, services: rules, warnings: [] };
  policy.warnings.push(...warningsOf(policy));
  return policy;
}

/** The rule of one VM: defaults, then its service's, then its own, key by key. */
export function ruleFor(policy: McpPolicy, vm: { name: string; service?: string | undefined }): VmRule {
  const service = vm.service === undefined ? undefined : policy.services.get(vm.service);
  return { ...policy.defaults, ...service, ...policy.vms.get(vm.name) };
}

/**
 * A VM the server makes (sandbox_create, vm_fork) is governed by the rule
 * of its name, so a caller must not pick a name that would loosen the rule
 * it acts under: its new VMs must get exactly the rule `from` (the
 * defaults for sandbox_create, the source VM's for vm_fork).
 */
export function checkNewVmName(policy: McpPolicy, name: string, from: VmRule): Refusal | undefined {
  if (sameRule(ruleFor(policy, { name }), from)) return undefined;
  return { reason: `a VM named ${name} would be governed by another rule than the one this call runs under`, hint: "pick another name (the policy has rules for this one)" };
}

export function sameRule(a: VmRule, b: VmRule): boolean {
  const list = (l: readonly string[] | undefined) => (l === undefined ? "unrestricted" : JSON.stringify([...l].sort()));
  return list(a.allowTools) === list(b.allowTools) && list(a.allowBinaries) === list(b.allowBinaries) && (a.denyRoot === true) === (b.denyRoot === true);
}

/** May `tool` run (on the VM of `rule`; tools without a VM use the defaults)? */
export function checkTool(policy: McpPolicy, tool: string, rule: VmRule = policy.defaults): Refusal | undefined {
  if (!isToolName(tool)) return { reason: `no tool named ${JSON.stringify(tool)}`, hint: "tools/list names every tool" };
  if (policy.hideTools.has(tool)) return { reason: `${tool} is hidden by the policy (hide_tools)`, hint: "the server's operator hid it; it cannot be called" };
  const allow = rule.allowTools;
  if (allow !== undefined && !allow.includes("*") && !allow.includes(tool)) {
    const which = (globalTools as readonly string[]).includes(tool as ToolName) ? "the server's" : "this VM's";
    return { reason: `${tool} is not in ${which} allow_tools (${allow.length === 0 ? "none" : allow.join(", ")})`, hint: "the policy allows only the tools it lists" };
  }
  return undefined;
}

export interface ExecAsk {
  argv: readonly string[];
  user?: string | undefined;
  env?: Readonly<Record<string, string>> | undefined;
  cwd?: string | undefined;
}

/** The checks of an exec that need no guest: its form, its program's name, its arguments, its user. */
export function checkExec(rule: VmRule, ask: ExecAsk): Refusal | undefined {
  const strings = [...ask.argv, ask.user ?? "", ask.cwd ?? "", ...Object.entries(ask.env ?? {}).flat()];
  if (strings.some((s) => s.includes("\0"))) return { reason: "a NUL byte in the command, user, directory or environment", hint: "the guest would cut the string there; pass it without NUL" };
  const program = ask.argv[0];
  if (program === undefined || program === "") return { reason: "no command given (empty argv)", hint: 'pass argv, e.g. ["uname", "-a"]' };
  if (rule.allowBinaries !== undefined) {
    const refused = checkProgram(rule.allowBinaries, program) ?? checkArguments(posix.basename(program), ask.argv.slice(1));
    if (refused !== undefined) return refused;
    if (Object.keys(ask.env ?? {}).length > 0) {
      return { reason: "environment variables are refused where allow_binaries holds", hint: "they change what a program loads and runs (LD_PRELOAD, PATH, BASH_ENV, …); run without env" };
    }
  }
  return rule.denyRoot === true ? checkUser(ask.user) : undefined;
}

/** argv[0]: a bare allowed name, or an absolute, normalised path to one (Pontoon strips the path). */
export function checkProgram(allow: readonly string[], program: string): Refusal | undefined {
  if (program.includes("/")) {
    if (!program.startsWith("/") || posix.normalize(program) !== program || program.endsWith("/")) {
      return { reason: `${JSON.stringify(program)} is a relative or unnormalised path`, hint: "name the program (e.g. nmap) or its absolute path without . or .. parts" };
    }
  }
  const name = posix.basename(program);
  if (!binaryName.test(name)) return { reason: `${JSON.stringify(name)} is not a plain ASCII program name`, hint: "allow_binaries names programs by ASCII names" };
  if (!allow.includes(name)) return { reason: `${name} is not in this VM's allow_binaries (${allow.length === 0 ? "none" : allow.join(", ")})`, hint: "run one of the allowed programs directly, without a shell or wrapper" };
  return undefined;
}

/** Arguments that make an allowed program run another one. */
export function checkArguments(name: string, args: readonly string[]): Refusal | undefined {
  const refuse = (what: string): Refusal => ({ reason: `${name} ${what} would run another program`, hint: "allow_binaries decides which program starts; arguments that start others are refused" });
  if (name === "find") {
    const bad = args.find((a) => ["-exec", "-execdir", "-ok", "-okdir"].includes(a));
    if (bad !== undefined) return refuse(bad);
  }
  if (["awk", "gawk", "mawk", "nawk"].includes(name)) {
    if (args.some((a) => /system|\||getline|ENVIRON/.test(a)) || args.some((a) => a === "-f" || a.startsWith("--file") || a.startsWith("-E"))) return refuse("with system(), a pipe, getline or a program file");
  }
  if (name === "tar") {
    const risky = ["--to-command", "--use-compress-program", "--checkpoint-action", "--info-script", "--new-volume-script", "--rsh-command", "-I", "-F"];
    const bad = args.find((a) => risky.some((r) => a === r || a.startsWith(`${r}=`)));
    if (bad !== undefined) return refuse(bad.split("=")[0]!);
  }
  return undefined;
}

/** deny_root, before the guest: a user must be given, and be a portable name or number that is not root or 0. */
export function checkUser(user: string | undefined): Refusal | undefined {
  if (user === undefined) return { reason: "no user given, and commands run as root by default; deny_root holds on this VM", hint: "pass user: a non-root user of the image (e.g. nobody)" };
  const parts = user.split(":");
  if (parts.length > 2 || parts.some((p) => !portableName.test(p) && !numericId.test(p))) {
    return { reason: `user ${JSON.stringify(user)} is not a plain name or number (optionally :group)`, hint: "write a lowercase user name or a uid, e.g. nobody or 65534:65534" };
  }
  for (const [i, part] of parts.entries()) {
    if (part === "root" || (numericId.test(part) && rootId(idOf(part)))) {
      const id = numericId.test(part) ? idOf(part) : 0;
      const why = id !== 0 ? " ((uid_t)-1: setuid would change nothing)" : numericId.test(part) && Number(part) !== 0 ? " once the guest casts it to a 32-bit id" : "";
      return { reason: `${i === 0 ? "user" : "group"} ${part} is root${why}; deny_root holds on this VM`, hint: "pass a non-root user (and group)" };
    }
  }
  return undefined;
}

/** A number the way the guest's strtol and uid_t cast read it: 4294967296 is 0. */
function idOf(digits: string): number {
  return Number(BigInt(digits) % 2n ** 32n);
}

/** A passwd or group field the way the guest's atol and uid_t cast read it: no digits is 0, -1 is 4294967295. */
function fieldId(field: string | undefined): number {
  const n = Number.parseInt((field ?? "").trim(), 10);
  return Number.isNaN(n) ? 0 : ((n % 2 ** 32) + 2 ** 32) % 2 ** 32;
}

/** 0 is root; 4294967295 ((uid_t)-1) asks setuid to change nothing, so it stays root. */
function rootId(id: number): boolean {
  return id === 0 || id === 2 ** 32 - 1;
}

/** deny_root, in the guest: what the image's /etc/passwd and /etc/group make of the user. */
export function checkResolvedUser(user: string, passwd: string, group: string): Refusal | undefined {
  const [userPart = "", groupPart] = user.split(":");
  const numeric = numericId.test(userPart);
  const entries = passwd.split("\n").map((l) => l.split(":")).filter((e) => e.length >= 4);
  const entry = numeric ? entries.find((e) => fieldId(e[2]) === idOf(userPart)) : entries.find((e) => e[0] === userPart);
  if (entry === undefined && !numeric) return { reason: `user ${userPart} is not in the image's /etc/passwd`, hint: "name a user the image has" };
  const uid = entry === undefined ? idOf(userPart) : fieldId(entry[2]);
  let gid = entry === undefined ? uid : fieldId(entry[3]);
  if (groupPart !== undefined) {
    const line = numericId.test(groupPart) ? undefined : group.split("\n").map((l) => l.split(":")).find((e) => e[0] === groupPart);
    if (!numericId.test(groupPart) && line === undefined) return { reason: `group ${groupPart} is not in the image's /etc/group`, hint: "name a group the image has" };
    gid = line === undefined ? idOf(groupPart) : fieldId(line[2]);
  }
  if (rootId(uid)) return { reason: `user ${userPart} is uid ${uid} in the image (root); deny_root holds on this VM`, hint: "pass a user whose uid is not 0" };
  if (rootId(gid)) return { reason: `user ${user} runs with gid ${gid} (root's group); deny_root holds on this VM`, hint: "pass a user and group that are not root's" };
  return undefined;
}

/**
 * allow_binaries, in the guest: `found` is where the VM's PATH finds the
 * program (or its absolute path), `real` that path with every symlink
 * resolved. The program that runs must carry the allowed name itself, or
 * be a multi-call binary that will pick the allowed name's applet.
 */
export function checkResolvedBinary(name: string, found: string, real: string): Refusal | undefined {
  if (!found.startsWith("/") || !real.startsWith("/")) return { reason: `${name} was not found on the VM's PATH`, hint: "install it in the image, or run a program it has" };
  if (posix.basename(found) !== name) return { reason: `${name} resolved to ${found}`, hint: "run the program by its own name" };
  const base = posix.basename(real);
  if (base !== name && !multicall.has(base)) return { reason: `${found} resolves to ${real} in the guest, not a program named ${name}`, hint: "a symlink named like an allowed program runs what it points at; that program is not allowed" };
  return undefined;
}

/** Rules that promise less than they look like they do. */
function warningsOf(policy: McpPolicy): string[] {
  const out: string[] = [];
  const rules: [string, VmRule][] = [["defaults", policy.defaults], ...[...policy.services].map(([s, r]): [string, VmRule] => [`service ${s}`, r]), ...[...policy.vms].map(([v, r]): [string, VmRule] => [`vm ${v}`, r])];
  for (const [where, rule] of rules) {
    const merged = where === "defaults" ? rule : { ...policy.defaults, ...rule };
    for (const b of merged.allowBinaries ?? []) {
      if (launchers.has(b)) out.push(`${where}: allow_binaries lists ${b}, which runs other programs: allowing it allows every program`);
    }
    if (merged.allowBinaries !== undefined && merged.denyRoot !== true) {
      out.push(`${where}: allow_binaries without deny_root: a command run as root can replace an allowed program in the guest`);
    }
  }
  return out;
}

function vmRule(raw: unknown, place: string): VmRule {
  const m = mapping(raw, place);
  unknownKeys(m, ["allow_tools", "allow_binaries", "deny_root"], place);
  const rule: VmRule = {};
  if (m.allow_tools !== undefined && m.allow_tools !== null) rule.allowTools = toolList(m.allow_tools, `${place}: allow_tools`, true);
  if (m.allow_binaries !== undefined && m.allow_binaries !== null) rule.allowBinaries = binaryList(m.allow_binaries, `${place}: allow_binaries`);
  if (m.deny_root !== undefined && m.deny_root !== null) {
    if (typeof m.deny_root !== "boolean") policyError(`${place}: deny_root must be true or false`, "write deny_root: true");
    rule.denyRoot = m.deny_root;
  }
  return rule;
}

function toolList(value: unknown, place: string, star: boolean): string[] {
  if (value === undefined || value === null) return [];
  const list = stringList(value, place);
  for (const t of list) {
    if (!(star && t === "*") && !isToolName(t)) policyError(`${place}: no tool named ${JSON.stringify(t)}`, `tools: ${[...globalTools, "vm_exec", "…"].join(", ")} (docs/cli.md, "MCP server")${star ? '; "*" for all' : ""}`);
  }
  return list;
}

function binaryList(value: unknown, place: string): string[] {
  const list = stringList(value, place);
  for (const b of list) {
    if (b.includes("/")) policyError(`${place}: ${JSON.stringify(b)} is a path`, `allow_binaries names programs without their path: write ${posix.basename(b)}`);
    if (!binaryName.test(b)) policyError(`${place}: ${JSON.stringify(b)} is not a program name`, "ASCII letters, digits and ._+- ");
  }
  return list;
}

function stringList(value: unknown, place: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) policyError(`${place} must be a list of strings`, 'e.g. ["vm_exec", "vm_ps"]');
  return value as string[];
}

function isRaw(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function mapping(v: unknown, place: string): Raw {
  if (!isRaw(v)) policyError(`${place} must be a map`, "see docs/cli.md, \"MCP server\"");
  return v;
}

function withoutKeys(m: Raw, keys: string[]): Raw {
  return Object.fromEntries(Object.entries(m).filter(([k]) => !keys.includes(k)));
}

function unknownKeys(m: Raw, known: string[], place: string): void {
  for (const k of Object.keys(m)) {
    if (!known.includes(k)) policyError(`${place}: unknown key ${JSON.stringify(k)}`, `the keys are ${known.join(", ")}`);
  }
}

function policyError(message: string, hint: string): never {
  throw new SkiffError("ERR_SKIFF_CONFIG", message, { hint, place: message.split(": ")[0] });
}

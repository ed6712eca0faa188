/**
 * vmctl's VMFile.kdl (CloudNebulaProject/vm-manager) → ProjectSpec, with
 * vmctl's own rules (unique VM names, exactly one image source, a shell step
 * with exactly one of inline/script, a file step with source and
 * destination, network user/tap/none) and skiff's (unknown nodes and
 * properties are errors), each at its line:column. Every VM is a cloud VM:
 * `image` (a local qcow2) and `image-url` both become imageUrl, booted on
 * q35 and reached over SSH. A `network "tap"` VM joins a project network
 * named after its bridge, a skiff bridge network (root).
 */
import type { Entry, Node } from "@bgotink/kdl";
import type { ProjectNetwork, ProjectSpec, ProvisionStep, ServiceSpec } from "../project/types.js";
import { parseCpus } from "../util/units.js";
import { hostPath, type LoaderContext } from "./context.js";
import { asConfigError, configFail, guestMemoryMiB, serviceBlanks, Warnings } from "./foreign.js";
import { kdlPlace, parseKdl } from "./kdl.js";

const hint = "see vmctl's VMFile.kdl reference and docs/foreign-formats.md for what skiff reads";
/** vmctl's defaults for a VM that does not say. */
const vmctlDefaults = { vcpus: 1, memoryMiB: 1024, sshUser: "vm", bridge: "br0" };
const gib = 1024 ** 3;

interface Ctx {
  file: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  warnings: Warnings;
  networks: Map<string, ProjectNetwork>;
}

export function vmfileToProject(text: string, file: string, ctx: LoaderContext): ProjectSpec {
  const doc = parseKdl(text, file);
  const c: Ctx = { file, dir: ctx.dir, env: ctx.env ?? process.env, warnings: new Warnings(), networks: new Map() };
  const seen = new Set<string>();
  const services: ServiceSpec[] = [];
  for (const node of doc.nodes) {
    if (node.getName() !== "vm") configFail(`unknown node ${JSON.stringify(node.getName())}; a VMFile holds vm blocks`, kdlPlace(file, node), hint);
    const name = onlyString(node, c, 'vm "name" { … }');
    if (seen.has(name)) configFail(`duplicate VM name ${JSON.stringify(name)}`, kdlPlace(file, node), "each vm must have a unique name");
    seen.add(name);
    services.push(vm(name, node, c));
  }
  if (services.length === 0) configFail(`${file} has no vm blocks`, file, 'add one: vm "name" { image-url "https://…" }');
  return {
    name: ctx.projectName,
    dir: ctx.dir,
    format: "vmfile",
    files: ctx.files,
    services,
    networks: [...c.networks.values()],
    volumes: [],
    layerPaths: [],
    warnings: c.warnings.list(),
  };
}

/** The node's one argument, a string; no properties. */
function onlyString(node: Node, c: Ctx, form: string): string {
  const [arg, ...rest] = node.entries;
  if (arg === undefined || arg.getName() !== null || typeof arg.getValue() !== "string" || rest.length > 0) {
    configFail(`${node.getName()} takes one string: ${form}`, kdlPlace(c.file, rest[0] ?? arg ?? node), hint);
  }
  return arg.getValue() as string;
}

/** The node's one argument, a whole number. */
function onlyInteger(node: Node, c: Ctx): number {
  const [arg, ...rest] = node.entries;
  const v = arg?.getValue();
  if (arg === undefined || arg.getName() !== null || typeof v !== "number" || !Number.isInteger(v) || v < 1 || rest.length > 0) {
    configFail(`${node.getName()} takes one whole number above 0`, kdlPlace(c.file, arg ?? node), hint);
  }
  return v;
}

function noChildren(node: Node, c: Ctx): void {
  if (node.children !== null) configFail(`${node.getName()} takes no { … } block`, kdlPlace(c.file, node), hint);
}

/** The children of a block node by name, each at most once and from `known`. */
function block(node: Node, known: readonly string[], c: Ctx, repeatable: readonly string[] = []): Map<string, Node> {
  const out = new Map<string, Node>();
  for (const child of node.children?.nodes ?? []) {
    const name = child.getName();
    if (!known.includes(name)) configFail(`unknown node ${JSON.stringify(name)} in ${node.getName()}; known: ${known.join(", ")}`, kdlPlace(c.file, child), hint);
    if (repeatable.includes(name)) continue;
    if (out.has(name)) configFail(`${name} is given twice in ${node.getName()}`, kdlPlace(c.file, child), "give it once");
    out.set(name, child);
  }
  return out;
}

function vm(name: string, node: Node, c: Ctx): ServiceSpec {
  if (node.children === null) configFail(`vm ${JSON.stringify(name)} has no { … } block`, kdlPlace(c.file, node), 'add its settings: vm "name" { image-url "https://…" }');
  const known = ["image", "image-url", "vcpus", "memory", "disk", "network", "cloud-init", "ssh", "provision"];
  const nodes = block(node, known, c, ["provision"]);
  const image = nodes.get("image");
  const url = nodes.get("image-url");
  if ((image === undefined) === (url === undefined)) {
    configFail(
      image === undefined ? `vm ${JSON.stringify(name)} has no image` : `vm ${JSON.stringify(name)} has both image and image-url`,
      kdlPlace(c.file, url ?? node),
      'give exactly one: image "path/to/disk.qcow2" or image-url "https://…"',
    );
  }
  const imageUrl = image !== undefined ? hostPath(c.dir, single(image, c), c.env) : imageUrlOf(url!, c);
  const memory = nodes.get("memory");
  const vcpus = nodes.get("vcpus");
  const disk = nodes.get("disk");
  const cpus = vcpus === undefined ? vmctlDefaults.vcpus : asConfigError(kdlPlace(c.file, vcpus), () => parseCpus(String(onlyInteger(vcpus, c)), kdlPlace(c.file, vcpus)));
  const memoryMiB = memory === undefined ? vmctlDefaults.memoryMiB : guestMemoryMiB(onlyInteger(memory, c), "memory", kdlPlace(c.file, memory), c.warnings, name);
  const net = network(nodes.get("network"), c);
  const cloud = cloudInit(name, nodes.get("cloud-init"), c);
  const ssh = nodes.get("ssh");
  return {
    name,
    ...serviceBlanks(),
    imageUrl,
    memoryMiB,
    cpus,
    ...(disk === undefined ? {} : { diskBytes: onlyInteger(disk, c) * gib }),
    userNetwork: net === "user",
    networks: typeof net === "string" ? [] : [{ network: net.name, masquerade: false }],
    ...(ssh === undefined ? {} : { ssh: sshBlock(name, ssh, c) }),
    ...(cloud === undefined ? {} : { cloudInit: cloud }),
    provision: (node.children.nodes ?? []).filter((n) => n.getName() === "provision").map((p) => provision(p, c)),
    place: kdlPlace(c.file, node),
  };
}

/** A node with one string argument and no block (`image "…"`, `user "…"`). */
function single(node: Node, c: Ctx): string {
  noChildren(node, c);
  return onlyString(node, c, `${node.getName()} "…"`);
}

function imageUrlOf(node: Node, c: Ctx): string {
  const url = single(node, c);
  if (url.startsWith("oci://")) configFail(`oci:// disk images are not supported by skiff: ${url}`, kdlPlace(c.file, node), "download the qcow2 (e.g. with oras pull) and name it with image \"path\"");
  return url;
}

function network(node: Node | undefined, c: Ctx): "user" | "none" | ProjectNetwork {
  if (node === undefined) return "user";
  const [mode, ...rest] = node.entries.filter((e) => e.getName() === null);
  const props = node.entries.filter((e) => e.getName() !== null);
  const type = mode?.getValue();
  if (type !== "user" && type !== "tap" && type !== "none") {
    configFail(`unknown network type ${JSON.stringify(type ?? null)}`, kdlPlace(c.file, mode ?? node), 'use "user", "tap" or "none" ("vnic" is for illumos zones)');
  }
  if (rest[0] !== undefined) configFail("network takes one type", kdlPlace(c.file, rest[0]), hint);
  const bad = props.find((p) => type !== "tap" || p.getName() !== "bridge");
  if (bad !== undefined) configFail(`unknown property ${bad.getName()}= on network "${type}"`, kdlPlace(c.file, bad), type === "tap" ? "a tap network takes bridge=" : hint);
  const children = block(node, type === "tap" ? ["bridge"] : [], c);
  if (type !== "tap") return type;
  const bridgeNode = children.get("bridge");
  const prop = props[0];
  if (prop !== undefined && bridgeNode !== undefined) configFail("bridge is given twice", kdlPlace(c.file, bridgeNode), "give bridge= or a bridge child, not both");
  const bridge = bridgeNode !== undefined ? single(bridgeNode, c) : prop !== undefined ? stringEntry(prop, c) : vmctlDefaults.bridge;
  const known = c.networks.get(bridge);
  if (known !== undefined) return known;
  const net: ProjectNetwork = { name: bridge, driver: "bridge", masquerade: false, internal: false, place: kdlPlace(c.file, node) };
  c.networks.set(bridge, net);
  return net;
}

function stringEntry(entry: Entry, c: Ctx): string {
  const v = entry.getValue();
  if (typeof v !== "string") configFail(`${entry.getName() ?? "value"} must be a string`, kdlPlace(c.file, entry), hint);
  return v;
}

function cloudInit(name: string, node: Node | undefined, c: Ctx): ServiceSpec["cloudInit"] {
  if (node === undefined) return undefined;
  if (node.entries[0] !== undefined) configFail("cloud-init takes a { … } block only", kdlPlace(c.file, node.entries[0]), hint);
  const nodes = block(node, ["hostname", "ssh-key", "user-data"], c);
  const hostname = nodes.get("hostname");
  const userData = nodes.get("user-data");
  const sshKey = nodes.get("ssh-key");
  if (sshKey !== undefined) {
    single(sshKey, c);
    c.warnings.add("cloud-init ssh-key", kdlPlace(c.file, sshKey), "skiff makes a key per VM and authorizes it for the SSH user; `skiff ssh` uses it", name);
  }
  return {
    ...(hostname === undefined ? {} : { hostname: single(hostname, c) }),
    ...(userData === undefined ? {} : { userDataPath: hostPath(c.dir, single(userData, c), c.env) }),
  };
}

function sshBlock(name: string, node: Node, c: Ctx): { user?: string } {
  if (node.children === null || node.entries[0] !== undefined) configFail('ssh takes a { … } block: ssh { user "ubuntu" }', kdlPlace(c.file, node), hint);
  const nodes = block(node, ["user", "private-key"], c);
  const key = nodes.get("private-key");
  if (key !== undefined) {
    single(key, c);
    c.warnings.add("ssh private-key", kdlPlace(c.file, key), "skiff logs in with the key it made for the VM", name);
  }
  const user = nodes.get("user");
  return { user: user === undefined ? vmctlDefaults.sshUser : single(user, c) };
}

function provision(node: Node, c: Ctx): ProvisionStep {
  const place = kdlPlace(c.file, node);
  const kind = node.entries.length === 0 ? "shell" : onlyString(node, c, 'provision "shell" { … } or provision "file" { … }');
  if (kind !== "shell" && kind !== "file") configFail(`unknown provision type ${JSON.stringify(kind)}`, kdlPlace(c.file, node.entries[0]!), 'use "shell" or "file"');
  if (node.children === null) configFail(`provision "${kind}" has no { … } block`, place, kind === "shell" ? 'add: inline "command" or script "./setup.sh"' : 'add: source "./f" and destination "/etc/f"');
  if (kind === "shell") {
    const nodes = block(node, ["inline", "script"], c);
    const inline = nodes.get("inline");
    const script = nodes.get("script");
    if ((inline === undefined) === (script === undefined)) {
      configFail(`a shell provision needs exactly one of inline or script`, kdlPlace(c.file, script ?? node), "use either inline or script, not both");
    }
    return inline !== undefined ? { kind: "shell", inline: single(inline, c), place } : { kind: "shell", script: hostPath(c.dir, single(script!, c), c.env), place };
  }
  const nodes = block(node, ["source", "destination"], c);
  const source = nodes.get("source");
  const destination = nodes.get("destination");
  if (source === undefined || destination === undefined) {
    configFail(`a file provision needs ${source === undefined ? "source" : "destination"}`, place, 'give both: source "./local" and destination "/remote"');
  }
  return { kind: "file", source: hostPath(c.dir, single(source, c), c.env), destination: single(destination, c), place };
}

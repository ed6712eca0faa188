/**
 * skiff.yml, as one zod schema: it validates (unknown keys are errors), its
 * z.input types are what skiff-file.ts translates, and json-schema.ts exports
 * it for editors. Values with a grammar of their own (sizes, durations,
 * ports, addresses) are checked here by the same parsers the CLI flags use,
 * so a bad `memory:` reads exactly like a bad `--memory`; checks that need
 * the whole file (names declared, cycles) are in skiff-file.ts.
 */
import { z } from "zod/v4";
import { isSkiffError, SkiffError } from "../errors.js";
import { parseDiskSize } from "../util/units.js";
import { parseIpv4, parseSubnet } from "../network/ipam.js";
import { parsePublish } from "../network/ports.js";
import { parseCpus, parseDuration, parseMemory } from "../util/units.js";

const textOrNumber = z.union([z.string(), z.number()]);

/**
 * A string (or a number, with `base`) checked by one of skiff's parsers; its
 * SkiffError becomes the issue, message and hint. The parsers' own `place`
 * (a flag name) is dropped: the file's line:column replaces it.
 */
function parsedBy<T extends z.ZodType<string | number>>(parse: (text: string) => unknown, description: string, base: T) {
  return base
    .superRefine((value, ctx) => {
      try {
        parse(String(value));
      } catch (err) {
        if (!isSkiffError(err)) throw err;
        ctx.addIssue({ code: "custom", message: err.message, params: { hint: err.hint } });
      }
    })
    .describe(description);
}

function checkIpv4(text: string): void {
  if (parseIpv4(text) === undefined) {
    throw new SkiffError("ERR_SKIFF_CONFIG", `not an IPv4 address: ${JSON.stringify(text)}`, { hint: "write four numbers from 0 to 255, e.g. 10.90.0.2" });
  }
}

const ipv4 = parsedBy(checkIpv4, "an IPv4 address", z.string());

const str = z.string();
const strList = z.array(z.string());
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const size = parsedBy(parseDiskSize, "a size with a binary unit: 512m, 10g", z.string());
const duration = parsedBy((t) => parseDuration(t), "a duration: 500ms, 10s, 1m30s (a bare number is seconds)", textOrNumber);

const serviceNetwork = z.strictObject({
  ipv4_address: ipv4.optional(),
  gateway: ipv4.optional().describe("the default route goes through this address (a router VM)"),
  masquerade: z.boolean().optional().describe("this VM NATs the other networks' traffic out of this one"),
});

const volumeMount = z.union([
  str.describe("./host/dir:/guest/dir[:ro] (a bind mount) or NAME:/guest/dir[:ro] (a named volume)"),
  z.strictObject({ type: z.enum(["bind", "volume"]), source: str, target: str, read_only: z.boolean().optional() }),
]);

const healthcheck = z.strictObject({
  test: z.union([z.array(str).min(1), str]).describe('["CMD", "prog", "arg"], ["CMD-SHELL", "cmd"] or a string (run with sh -c)'),
  interval: duration.optional(),
  timeout: duration.optional(),
  retries: z.number().int().nonnegative().optional(),
  start_period: duration.optional(),
});

const shellStep = z.strictObject({ inline: str.optional(), script: str.optional().describe("a host file, relative to the project file") });
const fileStep = z.strictObject({ source: str, destination: str });
type ShellStep = z.output<typeof shellStep>;
type FileStep = z.output<typeof fileStep>;
type AnyStep = { shell: ShellStep } | { file: FileStep } | (ShellStep & { type: "shell" }) | (FileStep & { type: "file" });

/** The shell part of a provision step in either form, or undefined for a file step. */
export function shellOf(step: AnyStep): ShellStep | undefined {
  if ("shell" in step) return step.shell;
  return "type" in step && step.type === "shell" ? step : undefined;
}

/** The file part of a provision step in either form, or undefined for a shell step. */
export function fileOf(step: AnyStep): FileStep | undefined {
  if ("file" in step) return step.file;
  return "type" in step && step.type === "file" ? step : undefined;
}

/** Primary form `- shell: {inline: …}`; the flat `- type: shell` form (pontoon/packer style) is accepted too. */
const provisionStep = z
  .union([
    z.strictObject({ shell: shellStep }),
    z.strictObject({ file: fileStep }),
    shellStep.extend({ type: z.literal("shell") }),
    fileStep.extend({ type: z.literal("file") }),
  ])
  .superRefine((step, ctx) => {
    const shell = shellOf(step);
    if (shell !== undefined && (shell.inline === undefined) === (shell.script === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: "shell" in step ? ["shell"] : [],
        message: "a shell step takes exactly one of inline and script",
        params: { hint: "split it into two steps, one with inline: and one with script:" },
      });
    }
  });

/** A VM's MCP rule (docs/cli.md, "MCP server"); src/mcp/policy.ts checks the names in it. */
const mcpRule = {
  allow_tools: strList.optional().describe('the MCP tools this VM allows: absent all, ["*"] all, [] none'),
  allow_binaries: strList.optional().describe("the programs vm_exec may start here, by name without path"),
  deny_root: z.boolean().optional().describe("nothing runs as root through the MCP server"),
};
const serviceMcp = z.strictObject({ ...mcpRule, hide_tools: strList.optional().describe("hidden from the whole MCP server") });
const topMcp = z.strictObject({ ...mcpRule, hide_tools: strList.optional().describe("MCP tools hidden from the listing and refused"), vms: z.record(str, z.strictObject(mcpRule)).optional().describe("rules of VMs by name") });

export const serviceSchema = z
  .strictObject({
    image: str.min(1).optional().describe("an OCI reference or a local image name"),
    "image-url": str.min(1).optional().describe("a cloud image (URL or path), booted with its own bootloader"),
    image_url: str.min(1).optional().describe("same as image-url"),
    layers: strList.optional().describe("layer names, applied in order on the image (default base: debian)"),
    kernel: str.optional(),
    kernel_args: z.union([strList, z.record(str, scalar)]).optional(),
    memory: parsedBy((t) => parseMemory(t), "256m, 1g; a bare number is MiB", textOrNumber).optional(),
    cpus: parsedBy((t) => parseCpus(t), "virtual CPUs", textOrNumber).optional(),
    disk: size.optional().describe("cloud images: grow the disk to this size"),
    hostname: str.optional(),
    environment: z.union([z.record(str, scalar), strList]).optional(),
    command: z.union([str, strList]).optional(),
    entrypoint: z.union([str, strList]).optional(),
    user: str.optional(),
    working_dir: str.optional(),
    networks: z.union([strList, z.record(str, serviceNetwork.nullable())]).optional(),
    ports: z.array(parsedBy((t) => parsePublish(t), "[ip:]host:guest[/tcp|udp], or a guest port", textOrNumber)).optional(),
    dns: z.union([ipv4, z.array(ipv4)]).optional(),
    volumes: z.array(volumeMount).optional(),
    depends_on: z
      .union([strList, z.record(str, z.strictObject({ condition: z.enum(["service_started", "service_healthy"]).optional() }).nullable())])
      .optional(),
    healthcheck: healthcheck.optional(),
    restart: z.enum(["no", "on-failure", "always", "unless-stopped"]).optional(),
    egress: z
      .union([z.enum(["all", "deny"]), z.strictObject({ allow: strList.min(1) })])
      .optional()
      .describe("where the VM may connect over user networking: all (but the host's loopback), deny, or {allow: [HOST[:PORT], CIDR[:PORT], …]}"),
    host_loopback: z.boolean().optional().describe("let the VM reach services on the host's 127.0.0.1 (at 10.0.2.2)"),
    replicas: z.number().int().min(1).optional(),
    ssh: z.strictObject({ user: str.optional() }).optional(),
    "cloud-init": z
      .strictObject({ "user-data": str.optional().describe("a file, or inline text when it has several lines"), hostname: str.optional() })
      .optional(),
    provision: z.array(provisionStep).optional(),
    mcp: serviceMcp.optional().describe("skiff mcp's rule for this service's VMs"),
  })
  .meta({ id: "service" });

const network = z.strictObject({
  driver: z.enum(["private", "bridge", "link"]).optional().describe("private (default): rootless between VMs; bridge: TAP + bridge (root); link: two VMs"),
  link: z.boolean().optional().describe("pontoon's spelling of driver: link"),
  subnet: parsedBy((t) => parseSubnet(t), "a CIDR, e.g. 10.90.0.0/24", z.string()).optional(),
  gateway: ipv4.optional(),
  masquerade: z.boolean().optional(),
  internal: z.boolean().optional(),
});

const volume = z.strictObject({ size: size.optional().describe("default 1g") });

export const skiffFileSchema = z.strictObject({
  version: z.union([z.literal("1"), z.literal(1)]).optional(),
  name: str.optional().describe("project name (default: the directory's name)"),
  defaults: serviceSchema.optional().describe("applied to every service; a service's own keys win"),
  services: z.record(str, serviceSchema),
  networks: z.record(str, network.nullable()).optional(),
  volumes: z.record(str, volume.nullable()).optional(),
  layers: strList.optional().describe("extra layer search paths, relative to the file"),
  mcp: topMcp.optional().describe("skiff mcp's access policy: the defaults of every VM, hide_tools, and rules of VMs by name"),
});

export type SkiffFile = z.output<typeof skiffFileSchema>;
export type ServiceInput = z.output<typeof serviceSchema>;
export type NetworkInput = z.output<typeof network>;
export type ProvisionInput = z.output<typeof provisionStep>;
export type VolumeMountInput = z.output<typeof volumeMount>;

/**
 * Pontoon's tools for the whole range (its word for a project):
 * topology_get, range_up, range_down, range_status, and network_tcpdump
 * (traffic on a network, captured on the host). These have no VM target:
 * hide_tools and the policy's top-level allow_tools decide.
 *
 * network_tcpdump captures on a bridge network's host bridge, as Pontoon
 * does on its bridges. skiff's private (multicast socket) and link
 * networks have no host interface that carries the VMs' frames as
 * Ethernet, so they are refused with a hint rather than captured wrong.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { SkiffError } from "../pure.js";
import type { Project } from "../project/project.js";
import { addTool, checkGlobal, ok, type McpContext } from "./context.js";
import { vmLine, vmSummary } from "./tools-vm.js";

function projectOf(ctx: McpContext): Project {
  if (ctx.project === undefined) {
    throw new SkiffError("ERR_SKIFF_PROJECT_NOT_FOUND", "this server has no project (range)", { hint: "start it with skiff mcp -f skiff.yml (or pontoon.yml), or in the project's directory" });
  }
  return ctx.project;
}

export function registerRangeTools(server: McpServer, ctx: McpContext): void {
  addTool(server, ctx, "topology_get", { description: "The range's topology: services and networks of the project, or the VMs and networks of this skiff.", input: z.object({}).strict(), readOnly: true }, async () => {
    checkGlobal(ctx, "topology_get");
    const networks = (await ctx.skiff.networks.list()).map((n) => ({ name: n.name, driver: n.driver, subnet: n.subnet, members: n.members.map((m) => ({ vm: m.vm, ip: m.ip })) }));
    const vms = (await ctx.skiff.list({ all: true })).map(vmSummary);
    const spec = ctx.project?.spec;
    const services = spec?.services.map((s) => ({ name: s.name, replicas: s.replicas, networks: s.networks.map((n) => n.network), dependsOn: s.dependsOn.map((d) => d.service) }));
    const data = { project: spec?.name ?? null, ...(services === undefined ? {} : { services }), networks, vms };
    const text = [`project: ${spec?.name ?? "(none)"}`, ...(services ?? []).map((s) => `service ${s.name} ×${s.replicas} on ${s.networks.join(", ") || "user"}`), ...networks.map((n) => `network ${n.name} (${n.driver}) ${n.subnet ?? ""}: ${n.members.map((m) => `${m.vm}=${m.ip}`).join(" ")}`)].join("\n");
    return ok(data, text);
  });

  addTool(server, ctx, "range_status", { description: "Every VM of the range: state, health, addresses.", input: z.object({}).strict(), readOnly: true }, async () => {
    checkGlobal(ctx, "range_status");
    const ps = await projectOf(ctx).ps({ all: true });
    const vms = ps.map((s) => ({ service: s.service, ...vmSummary(s.vm), ...(s.health === undefined ? {} : { health: s.health }) }));
    return ok({ project: projectOf(ctx).spec.name, vms }, ps.map((s) => `${s.service}\t${vmLine(s.vm)}${s.health === undefined ? "" : `\t${s.health}`}`).join("\n") || "(no VMs)");
  });

  addTool(server, ctx, "range_up", { description: "Bring the range up: create and start every VM of the project (it is up when this returns).", input: z.object({ services: z.array(z.string()).optional() }).strict() }, async (a) => {
    checkGlobal(ctx, "range_up");
    const r = await projectOf(ctx).up(a.services === undefined ? {} : { services: a.services });
    return ok({ vms: r.vms }, r.vms.map((v) => `${v.name}\t${v.action}`).join("\n"));
  });

  addTool(server, ctx, "range_down", { description: "Take the range down: stop and remove its VMs and networks.", input: z.object({}).strict() }, async () => {
    checkGlobal(ctx, "range_down");
    const r = await projectOf(ctx).down();
    return ok({ ...r }, `removed ${r.vms.length} VMs${r.networks.length === 0 ? "" : `, networks ${r.networks.join(", ")}`}`);
  });

  addTool(
    server,
    ctx,
    "network_tcpdump",
    { description: "Capture traffic on a bridge network for a few seconds (tcpdump on its host bridge).", input: z.object({ network: z.string().min(1), duration_s: z.number().min(1).max(60).default(5), filter: z.string().default("").describe("a pcap filter expression, e.g. tcp port 80") }).strict(), readOnly: true },
    async (a) => {
      checkGlobal(ctx, "network_tcpdump");
      const net = await ctx.skiff.networks.inspect(a.network);
      if (net.driver !== "bridge" || net.bridge === undefined) {
        throw new SkiffError("ERR_SKIFF_USAGE", `network ${net.name} is a ${net.driver} network: it has no host bridge to capture on`, { place: "network", hint: "capture inside a VM instead (vm_exec tcpdump), or use a bridge network" });
      }
      // After --, tcpdump reads only a filter expression: no word of it can become an option (-w FILE).
      const words = a.filter.split(/\s+/).filter((w) => w !== "");
      const r = await ctx.skiff.runner.run("timeout", [String(a.duration_s), "tcpdump", "-i", net.bridge, "-n", "-l", "-c", "500", "--", ...words], { debianPackage: "tcpdump" });
      if (r.code !== 0 && r.code !== 124) throw new SkiffError("ERR_SKIFF_TOOL_FAILED", `tcpdump failed: ${r.stderr.trim()}`, { place: "filter" });
      return ok({ network: net.name, bridge: net.bridge, packets: r.stdout.split("\n").filter((l) => l !== "") }, r.stdout === "" ? "(no packets)" : r.stdout);
    },
  );
}

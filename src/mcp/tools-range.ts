/**
 * Pontoon's tools for the whole range (its word for a project):
 * topology_get, range_up, range_down, range_status, and network_tcpdump
 * (traffic on a network, captured on the host). These have no VM target:
 * hide_tools and the policy's top-level allow_tools decide.
 *
 * network_tcpdump is `skiff network tcpdump` for a few seconds
 * (skiff.networks.capture): on every kind of network, not only on a
 * bridge as Pontoon's (a private network's multicast segment, a link's
 * QEMU filter-dump, a bridge's host interface), its text collected.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { SkiffError } from "../pure.js";
import type { Project } from "../project/project.js";
import { addTool, checkGlobal, ok, type McpContext } from "./context.js";
import { outputLimit } from "./exec.js";
import { vmLine, vmSummary } from "./tools-vm.js";

/** The most packets one capture returns. */
const maxPackets = 500;

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
    {
      description: "Capture traffic on a network (private, link or bridge) for a few seconds, as tcpdump prints it.",
      input: z.object({ network: z.string().min(1), duration_s: z.number().min(1).max(60).default(5), filter: z.string().default("").describe("a pcap filter expression, e.g. tcp port 80"), count: z.number().int().min(1).max(maxPackets).default(maxPackets).describe("stop after this many packets that pass the filter") }).strict(),
      readOnly: true,
    },
    async (a) => {
      checkGlobal(ctx, "network_tcpdump");
      const net = await ctx.skiff.networks.inspect(a.network);
      // The filter goes to tcpdump after --, as words: none of them can become an option (-w FILE).
      const filter = a.filter.split(/\s+/).filter((w) => w !== "");
      const capture = await ctx.skiff.networks.capture({ network: net.name, filter, count: a.count, format: "text" });
      const timer = setTimeout(() => capture.stop(), a.duration_s * 1000);
      let text = "";
      capture.output.setEncoding("utf8");
      capture.output.on("data", (chunk: string) => {
        text = (text + chunk).slice(-outputLimit);
      });
      try {
        const summary = await capture.done;
        const packets = text.split("\n").filter((l) => l !== "");
        return ok({ network: net.name, driver: net.driver, packets, frames: summary.frames, dropped: summary.dropped, ended: summary.ended }, text === "" ? "(no packets)" : text);
      } finally {
        clearTimeout(timer);
        capture.stop();
      }
    },
  );
}

/**
 * The compose verbs that act on a project's existing VMs: ps, logs, exec,
 * stop, start, restart, pause, unpause, kill, top (`skiff compose VERB`).
 */
import type { Command } from "commander";
import { guestProcesses, parseEnvList, parseGuestSignal as parseSignal, SkiffError } from "../../pure.js";
import { labels } from "../../project/names.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";
import { attachSession, checkTty } from "../session.js";
import { envFlags, envHelp } from "../spec-flags.js";
import { projectFlags, withProject } from "../project-open.js";
import { followLogs } from "./project-logs.js";
import { remoteProject, withRemote } from "../project-remote.js";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function registerPs(parent: Command, ctx: CliContext): void {
  (
    parent.command("ps").description("list the project's VMs (health where a service has a healthcheck)").option("-a, --all", "also stopped VMs")
  ).action(async (flags: { all?: boolean }, cmd: Command) => {
    const remote = await remoteProject(ctx, projectFlags(cmd));
    const rows =
      remote !== undefined
        ? await withRemote(remote, (r) => r.client.projectPs(r.source, { all: flags.all === true }))
        : await withProject(ctx, projectFlags(cmd), (p) => p.ps({ all: flags.all === true }));
    if (ctx.flags.json) {
      process.stdout.write(JSON.stringify(rows) + "\n");
      return;
    }
    process.stdout.write(
      table(
        ["NAME", "SERVICE", "STATE", "HEALTH", "ADDRESSES", "PORTS"],
        rows.map((r) => [
          r.vm.name,
          r.service,
          r.vm.state,
          r.health ?? "",
          r.vm.interfaces.filter((i) => i.network !== "user").map((i) => i.address.split("/")[0]).join(",") || "-",
          r.vm.ports.join(", "),
        ]),
      ),
    );
  });
}

function registerLogs(parent: Command, ctx: CliContext): void {
  (
    parent
      .command("logs")
      .description("the console logs of the project's VMs, each line prefixed with its VM")
      .argument("[service...]")
      .option("-f, --follow", "keep printing until the VMs stop (Ctrl-C ends it)")
      .option("-n, --tail <n>", "only the last N lines of each")
      .option("--provision", "the provision logs instead")
  ).action(async (services: string[], flags: { follow?: boolean; tail?: string; provision?: boolean }, cmd: Command) => {
    const tail = flags.tail === undefined ? undefined : Number(flags.tail);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) {
      throw new SkiffError("ERR_SKIFF_USAGE", `not a line count: ${flags.tail}`, { place: "--tail", hint: "give a whole number" });
    }
    await withProject(ctx, projectFlags(cmd), async (p) => {
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      await followLogs(p, services, {
        follow: flags.follow === true,
        provision: flags.provision === true,
        ...(tail === undefined ? {} : { tail }),
        ...(flags.follow === true ? { signal: stop.signal } : {}),
      });
    });
  });
}

interface ExecFlags {
  index?: string;
  interactive?: boolean;
  tty?: boolean;
  user?: string;
  env: string[];
  workdir?: string;
}

function registerExec(parent: Command, ctx: CliContext): void {
  (
    parent
      .command("exec")
      .description("run a command in a service's VM")
      .argument("<service>")
      .argument("<command...>")
      .option("--index <n>", "which replica (default 1)")
      .option("-i, --interactive", "forward stdin")
      .option("-t, --tty", "allocate a pseudo-terminal")
      .option("-u, --user <user>", "user name or uid[:gid] in the guest")
      .option(envFlags, envHelp("environment variable"), collect, [])
      .option("-w, --workdir <dir>", "working directory in the guest")
      .passThroughOptions()
  ).action(async (service: string, command: string[], flags: ExecFlags, cmd: Command) => {
    const session = { interactive: flags.interactive === true, tty: flags.tty === true };
    checkTty(session, "--tty");
    const index = flags.index === undefined ? 1 : Number(flags.index);
    if (!Number.isInteger(index) || index < 1) throw new SkiffError("ERR_SKIFF_USAGE", `not a replica number: ${flags.index}`, { place: "--index", hint: "1, 2, …" });
    await withProject(ctx, projectFlags(cmd), async (p) => {
      const vm = await p.vmFor(service, index);
      const spec = vm.config.spec;
      const user = flags.user ?? spec.user;
      const cwd = flags.workdir ?? spec.workingDir;
      const given = parseEnvList(flags.env);
      const conn = await p.skiff.connect(vm.name);
      try {
        ctx.exitCode = await attachSession(
          conn,
          {
            argv: command,
            env: spec.boot?.kind === "cloud" ? { ...spec.env, ...given } : given,
            ...(user === undefined ? {} : { user }),
            ...(cwd === undefined ? {} : { cwd }),
          },
          session,
        );
      } finally {
        await conn.close();
      }
    });
  });
}

function registerLifecycle(parent: Command, ctx: CliContext): void {
  const verbs = [
    ["stop", "stop services' VMs (they stay, with their disks)"],
    ["start", "start services' stopped VMs"],
    ["restart", "restart services' VMs"],
    ["pause", "pause services' VMs (their guests stop, keeping their memory)"],
    ["unpause", "let services' paused VMs run again"],
  ] as const;
  for (const [verb, description] of verbs) {
    (parent.command(verb).description(description).argument("[service...]")).action(async (services: string[], _flags: unknown, cmd: Command) => {
      const remote = await remoteProject(ctx, projectFlags(cmd));
      if (remote !== undefined) await withRemote(remote, (r) => r.client.projectVerb(verb, r.source, services, r.listeners));
      else await withProject(ctx, projectFlags(cmd), (p) => p[verb](services));
    });
  }
  (
    parent.command("kill").description("send a signal to services' QEMU (default SIGKILL)").argument("[service...]").option("-s, --signal <sig>", "signal name or number")
  ).action(async (services: string[], flags: { signal?: string }, cmd: Command) => {
    const signal = flags.signal === undefined ? undefined : parseSignal(flags.signal).number;
    await withProject(ctx, projectFlags(cmd), (p) => p.kill(services, signal));
  });
}

function registerTop(parent: Command, ctx: CliContext): void {
  (parent.command("top").description("the processes running in services' VMs").argument("[service...]")).action(
    async (services: string[], _flags: unknown, cmd: Command) => {
      await withProject(ctx, projectFlags(cmd), async (p) => {
        for (const vm of await p.vms(services)) {
          if ((await p.skiff.info(vm)).state !== "running") continue;
          const conn = await p.skiff.connect(vm.name);
          try {
            const table = await guestProcesses(conn, vm.name);
            process.stdout.write(`${vm.name} (${vm.config.spec.labels[labels.service] ?? "?"})\n${table}\n`);
          } finally {
            await conn.close();
          }
        }
      });
    },
  );
}

export function registerProjectOps(parent: Command, ctx: CliContext): void {
  registerPs(parent, ctx);
  registerLogs(parent, ctx);
  registerExec(parent, ctx);
  registerLifecycle(parent, ctx);
  registerTop(parent, ctx);
}

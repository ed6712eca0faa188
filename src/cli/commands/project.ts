/**
 * docker compose's verbs for a project file (skiff.yml, pontoon.yml,
 * VMFile.kdl, compose.yaml), found upward from the working directory or given
 * with -f. The everyday ones are top-level (`skiff up`, `skiff down`, …);
 * all of them, including those whose names the VM verbs already use (ps,
 * logs, exec, stop, …), are under `skiff compose`.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import type { UpOptions } from "../../project/up.js";
import { addProjectFlags, openProject, projectFlags, withProject, type ProjectFlags } from "../project-open.js";
import { registerProjectOps } from "./project-ops.js";
import { registerProjectConfig } from "./project-config.js";
import { followRemoteLogs, remoteProject, withRemote, type RemoteProject } from "../project-remote.js";
import { signalExitCode, untilSignal } from "../cancel.js";

interface UpFlags extends ProjectFlags {
  detach?: boolean;
  build?: boolean;
  provision?: boolean;
  wait?: boolean;
  removeOrphans?: boolean;
}

function registerUp(parent: Command, ctx: CliContext, own: boolean): void {
  addProjectFlags(
    parent
      .command("up")
      .description("create and start the project's VMs (build layers, make networks and volumes, provision on first start, start again what the last up failed on)")
      .argument("[service...]", "only these services (and what they depend on)")
      .option("-d, --detach", "return once everything is up (default: follow the VMs' logs until Ctrl-C, then stop them)")
      .option("--build", "rebuild layer images even when cached")
      .option("--no-provision", "do not run provisioners")
      .option("--wait", "wait until every service with a healthcheck is healthy")
      .option("--remove-orphans", "remove VMs of services no longer in the file"),
    own,
  ).action(async (services: string[], flags: UpFlags, cmd: Command) => {
    const options = { services, build: flags.build === true, noProvision: flags.provision === false, wait: flags.wait === true, removeOrphans: flags.removeOrphans === true };
    const remote = await remoteProject(ctx, projectFlags(cmd));
    if (remote !== undefined) return upRemote(ctx, remote, options, flags.detach === true);
    const { project, finish } = await openProject(ctx, projectFlags(cmd));
    let result;
    try {
      result = await project.up(options);
    } finally {
      finish();
    }
    if (ctx.flags.json) {
      process.stdout.write(JSON.stringify(result) + "\n");
      return;
    }
    if (flags.detach === true) return;
    // Like `docker compose up` without -d: the VMs' output here until Ctrl-C (or SIGTERM, SIGHUP), which stops them.
    const { followLogs } = await import("./project-logs.js");
    await stopOnSignal(ctx, async (signal) => {
      await followLogs(project, services, { follow: true, signal });
      await project.stop(services);
    });
  });
}

/** `up` through a server: detached there; without -d the VMs' logs follow here until Ctrl-C, which stops them. */
async function upRemote(ctx: CliContext, remote: RemoteProject, options: UpOptions, detach: boolean): Promise<void> {
  const result = await withRemote(remote, (r) => r.client.projectUp(r.source, { ...options, ...r.listeners }));
  if (ctx.flags.json) {
    process.stdout.write(JSON.stringify(result) + "\n");
    return;
  }
  if (detach) return;
  await stopOnSignal(ctx, async (signal) => {
    await followRemoteLogs(remote.client, result.vms.map((v) => v.name), signal);
    await remote.client.projectVerb("stop", remote.source, options.services ?? []);
  });
}

/**
 * A foreground `up`'s follow-then-stop. ^C ends it as before (exit 0, as
 * when the VMs end by themselves); SIGTERM or SIGHUP (a service manager, a
 * closed terminal) stop the VMs too, then skiff exits with the signal's
 * code, where before they ended skiff at once and left the VMs running.
 */
async function stopOnSignal(ctx: CliContext, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const sig = await untilSignal("the project's VMs", work);
  if (sig !== undefined && sig !== "SIGINT") ctx.exitCode = signalExitCode(sig);
}

function registerDown(parent: Command, ctx: CliContext, own: boolean): void {
  addProjectFlags(
    parent
      .command("down")
      .description("stop and remove the project's VMs and networks")
      .option("-v, --volumes", "also remove the project's named volumes (their data is lost)")
      .option("--destroy", "remove everything the project made: VMs, networks, volumes and the images built from its layers"),
    own,
  ).action(async (flags: { volumes?: boolean; destroy?: boolean }, cmd: Command) => {
    const options = { volumes: flags.volumes === true, destroy: flags.destroy === true };
    const remote = await remoteProject(ctx, projectFlags(cmd));
    const r =
      remote !== undefined
        ? await withRemote(remote, (rp) => rp.client.projectDown(rp.source, { ...options, ...rp.listeners }))
        : await withProject(ctx, projectFlags(cmd), (p) => p.down(options));
    if (ctx.flags.json) process.stdout.write(JSON.stringify(r) + "\n");
  });
}

function registerBuild(parent: Command, ctx: CliContext, own: boolean): void {
  addProjectFlags(
    parent
      .command("build")
      .description("build the layer images of the project's services (cached by every input)")
      .argument("[service...]")
      .option("--no-cache", "build even when a cached image matches"),
    own,
  ).action(async (services: string[], flags: { cache?: boolean }, cmd: Command) => {
    const built = await withProject(ctx, projectFlags(cmd), (p) => p.build(services, { force: flags.cache === false }));
    if (ctx.flags.json) process.stdout.write(JSON.stringify(built) + "\n");
    else for (const b of built) process.stdout.write(`${b.service}\t${b.image.image}${b.image.cached ? "\t(cached)" : ""}\n`);
  });
}

function registerProvision(parent: Command, ctx: CliContext, own: boolean): void {
  addProjectFlags(
    parent.command("provision").description("run the provisioners of running services again").argument("[service...]"),
    own,
  ).action(async (services: string[], _flags: unknown, cmd: Command) => {
    await withProject(ctx, projectFlags(cmd), (p) => p.provision(services));
  });
}

function registerReload(parent: Command, ctx: CliContext, own: boolean): void {
  addProjectFlags(
    parent.command("reload").description("destroy and recreate services, then provision them").argument("[service...]"),
    own,
  ).action(async (services: string[], _flags: unknown, cmd: Command) => {
    const r = await withProject(ctx, projectFlags(cmd), (p) => p.reload(services));
    if (ctx.flags.json) process.stdout.write(JSON.stringify(r) + "\n");
  });
}

export function registerProject(program: Command, ctx: CliContext): void {
  const everyday = (parent: Command, own: boolean) => {
    registerUp(parent, ctx, own);
    registerDown(parent, ctx, own);
    registerBuild(parent, ctx, own);
    registerProvision(parent, ctx, own);
    registerReload(parent, ctx, own);
    registerProjectConfig(parent, ctx, own);
  };
  everyday(program, true);
  const compose = addProjectFlags(
    program
      .command("compose")
      .description("docker compose's verbs on the project file (up, down, ps, logs, exec, stop, start, restart, pause, unpause, kill, top, build, config, provision, reload)"),
  );
  everyday(compose, false);
  registerProjectOps(compose, ctx);
}

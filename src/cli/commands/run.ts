/**
 * run: create + start + run a command, like `docker run`. In the foreground
 * the command's output streams here and its exit code becomes ours; the VM
 * stops afterwards (and goes, with --rm). With -d the VM keeps running and
 * its name is printed.
 */
import type { Command } from "commander";
import type { AgentConnection, ExecRequest } from "../../guest/agent.js";
import { startDetached } from "../../guest/detach.js";
import type { VmInfo } from "../../engine/info.js";
import type { Skiff } from "../../engine/skiff.js";
import { isSkiffError } from "../../errors.js";
import type { CliContext } from "../context.js";
import { attachSession, checkTty } from "../session.js";
import { loadSettings } from "../settings.js";
import { addMachineFlags, type MachineFlags } from "../spec-flags.js";
import { crashPoint } from "../../util/crash-point.js";

interface RunFlags extends MachineFlags {
  from?: string;
  cold?: boolean;
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
}

export function registerRun(program: Command, ctx: CliContext): void {
  addMachineFlags(
    program
      .command("run")
      .description("create and start a VM, and run a command in it")
      .argument("[image]", "image to boot (built in: base)", "base")
      .argument("[command...]", "command to run (default: the image's Cmd; base: a shell)")
      .option("-d, --detach", "leave the VM running and print its name")
      .option("-i, --interactive", "forward stdin")
      .option("-t, --tty", "allocate a pseudo-terminal")
      .option("--rm", "remove the VM when it stops")
      .option("--from <snapshot>", "start from a snapshot (name or id) instead of booting an image: the new VM runs on where the snapshot left off")
      .option("--cold", "boot, even where a boot snapshot of the same image and machine would start it faster"),
  )
    .passThroughOptions()
    .action(async (image: string, command: string[], flags: RunFlags) => {
      const session = { interactive: flags.interactive === true, tty: flags.tty === true };
      if (flags.detach !== true) checkTty(session, "--tty");
      const { checkFromSnapshotFlags, createOptionsFrom } = await import("../machine-options.js");
      if (flags.from !== undefined) checkFromSnapshotFlags(flags);
      const skiff = await ctx.skiff();
      // With --image-url or --from there is no IMAGE argument: what came first is the command.
      const noImage = flags.imageUrl !== undefined || flags.from !== undefined;
      const argv = !noImage ? command : image === "base" && command.length === 0 ? [] : [image, ...command];
      const options = createOptionsFrom(flags.from === undefined ? image : "base", argv, flags, await loadSettings());
      // In the foreground the VM is tied to this process from its creation: if we are killed, the next skiff command cleans up.
      const info =
        flags.from === undefined
          ? await skiff.create({ ...options, attach: flags.detach !== true })
          : await skiff.restore(flags.from, {
              ...(options.name === undefined ? {} : { name: options.name }),
              ...(options.hostname === undefined ? {} : { hostname: options.hostname }),
              forwards: options.network?.mode === "user" ? options.network.forwards : [],
              autoRemove: flags.rm === true,
              attach: flags.detach !== true,
            });
      crashPoint("run:created");
      const main = flags.from !== undefined && argv.length > 0 ? argv : [...info.entrypoint, ...info.command];
      const start = flags.from === undefined ? (sk: Skiff, name: string) => startOrRemove(sk, name, flags.cold === true) : async () => undefined;
      if (flags.detach === true) {
        await start(skiff, info.name);
        if (main.length > 0) {
          const conn = await skiff.connect(info.name);
          const failed = await startDetached(conn, mainRequest(conn, info, main)).then(() => undefined, (err: unknown) => err);
          await conn.close();
          if (failed !== undefined) {
            await skiff.remove(info.name, { force: true });
            throw failed;
          }
        }
        process.stdout.write(`${info.name}\n`);
        return;
      }
      let stopped = false;
      const stopVm = async () => {
        if (stopped) return;
        stopped = true;
        if (flags.rm === true) await skiff.remove(info.name, { force: true });
        else await skiff.stop(info.name, { timeoutMs: 10_000 });
      };
      try {
        await start(skiff, info.name).catch((err: unknown) => {
          if (isSkiffError(err) && err.code === "ERR_SKIFF_NO_SPACE") stopped = true;
          throw err;
        });
        const conn = await skiff.connect(info.name);
        try {
          ctx.exitCode = await attachSession(conn, mainRequest(conn, info, main), session);
          // Flush the guest's page cache so writes survive the stop below (a cloud image has its own sync).
          const sync = conn.sshUser === undefined ? ["/dev/.skiff/bin/busybox", "sync"] : ["sync"];
          if (flags.rm !== true) await conn.run(sync, { timeoutMs: 30_000 }).catch(() => undefined);
        } finally {
          await conn.close();
        }
      } finally {
        await stopVm();
        if (flags.rm !== true) await skiff.detach(info.name).catch(() => undefined);
      }
    });
}

/**
 * A VM that could not start for want of disk space is removed, with
 * everything it made: it holds space the user is short of, and a `run` that
 * failed should leave nothing to clean up. After other failures (a boot that
 * failed) it stays, so that its console log can tell why.
 */
async function startOrRemove(skiff: Skiff, name: string, cold: boolean): Promise<void> {
  try {
    await skiff.start(name, { cold });
  } catch (err) {
    if (isSkiffError(err) && err.code === "ERR_SKIFF_NO_SPACE") await skiff.remove(name, { force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * The main command with the VM's defaults. skiff-init gives every command
 * the VM's environment; a cloud image's sshd does not, so it goes along.
 */
function mainRequest(conn: AgentConnection, info: VmInfo, argv: string[]): Omit<ExecRequest, "tty"> {
  return {
    argv,
    ...(conn.sshUser === undefined ? {} : { env: info.env }),
    ...(info.user === undefined ? {} : { user: info.user }),
    ...(info.workingDir === undefined ? {} : { cwd: info.workingDir }),
  };
}

/**
 * run: create + start + run a command, like `docker run`. In the foreground
 * the command's output streams here and its exit code becomes ours; the VM
 * stops afterwards (and goes, with --rm). With -d the VM keeps running and
 * its name is printed.
 */
import type { Command } from "commander";
import { SkiffError } from "../../errors.js";
import type { AgentConnection, ExecRequest } from "../../guest/agent.js";
import type { CliContext } from "../context.js";
import { attachSession, checkTty } from "../session.js";
import { addMachineFlags, createOptionsFrom, type MachineFlags } from "../spec-flags.js";

/**
 * `run -d IMAGE CMD`: the command runs in the background of the guest, in
 * a session of its own (so it outlives the SSH channel), its output on the
 * serial console, where `skiff logs` shows it.
 */
async function startDetached(conn: AgentConnection, req: Omit<ExecRequest, "tty">): Promise<void> {
  const command = req.argv;
  try {
    const r = await conn.run(["/dev/.skiff/bin/skiff-detach", ...command], { ...req, timeoutMs: 30_000 });
    if (r.code !== 0) {
      throw new SkiffError(r.code === 127 ? "ERR_SKIFF_USAGE" : "ERR_SKIFF_AGENT", `cannot start the command in the background: ${r.stderr.trim()}`, {
        place: command.join(" "),
        hint: "check the command's name and that the image has it",
      });
    }
  } finally {
    await conn.close();
  }
}

interface RunFlags extends MachineFlags {
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
      .option("--rm", "remove the VM when it stops"),
  )
    .passThroughOptions()
    .action(async (image: string, command: string[], flags: RunFlags) => {
      const session = { interactive: flags.interactive === true, tty: flags.tty === true };
      if (flags.detach !== true) checkTty(session, "--tty");
      const skiff = ctx.skiff();
      // With --image-url there is no IMAGE argument: what came first is the command.
      const argv = flags.imageUrl === undefined ? command : image === "base" && command.length === 0 ? [] : [image, ...command];
      if (flags.imageUrl !== undefined && flags.detach === true && argv.length > 0) {
        throw new SkiffError("ERR_SKIFF_USAGE", "run -d with a command is not supported for cloud images yet", {
          place: "--image-url",
          hint: "run -d without a command, then `skiff exec NAME CMD`",
        });
      }
      const info = await skiff.create(createOptionsFrom(image, argv, flags));
      const main = [...info.entrypoint, ...info.command];
      const defaults = {
        ...(info.user === undefined ? {} : { user: info.user }),
        ...(info.workingDir === undefined ? {} : { cwd: info.workingDir }),
      };
      if (flags.detach === true) {
        await skiff.start(info.name);
        if (main.length > 0) {
          await startDetached(await skiff.connect(info.name), { argv: main, ...defaults }).catch(async (err: unknown) => {
            await skiff.remove(info.name, { force: true });
            throw err;
          });
        }
        process.stdout.write(`${info.name}\n`);
        return;
      }
      // Tie the VM to this process before it boots: if we are killed, the next skiff command cleans up.
      await skiff.attach(info.name);
      let stopped = false;
      const stopVm = async () => {
        if (stopped) return;
        stopped = true;
        if (flags.rm === true) await skiff.remove(info.name, { force: true });
        else await skiff.stop(info.name, { timeoutMs: 10_000 });
      };
      try {
        await skiff.start(info.name);
        const conn = await skiff.connect(info.name);
        try {
          ctx.exitCode = await attachSession(conn, { argv: main, ...defaults }, session);
          // Flush the guest's page cache so writes survive the stop below.
          if (flags.rm !== true) await conn.run(["/dev/.skiff/bin/busybox", "sync"], { timeoutMs: 30_000 }).catch(() => undefined);
        } finally {
          await conn.close();
        }
      } finally {
        await stopVm();
        if (flags.rm !== true) await skiff.detach(info.name).catch(() => undefined);
      }
    });
}

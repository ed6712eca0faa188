/**
 * run: create + start + run a command, like `docker run`. In the foreground
 * the command's output streams here and its exit code becomes ours; the VM
 * stops afterwards (and goes, with --rm). With -d the VM keeps running and
 * its name is printed.
 */
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { attachSession, checkTty } from "../session.js";
import { loadSettings } from "../settings.js";
import { addMachineFlags, type MachineFlags } from "../spec-flags.js";

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
      const skiff = await ctx.client();
      // With --image-url or --from there is no IMAGE argument: what came first is the command.
      const noImage = flags.imageUrl !== undefined || flags.from !== undefined;
      const argv = !noImage ? command : image === "base" && command.length === 0 ? [] : [image, ...command];
      const options = createOptionsFrom(flags.from === undefined ? image : "base", argv, flags, await loadSettings());
      // The library does the work (Skiff.run); the foreground command is wired to this terminal.
      const result = await skiff.run(options, {
        ...(flags.from === undefined ? {} : { from: flags.from, argv }),
        detach: flags.detach === true,
        cold: flags.cold === true,
        attach: (conn, req) => attachSession(conn, req, session),
      });
      if (flags.detach === true) process.stdout.write(`${result.vm.name}\n`);
      else ctx.exitCode = result.code ?? 0;
    });
}

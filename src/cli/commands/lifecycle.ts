/**
 * create / start / stop / restart / pause / unpause / kill / rm: each takes one or many names,
 * acts on every one, reports each failure, and fails if any failed.
 */
import type { Command } from "commander";
import { parseDuration, parseSignal, SkiffError } from "../../pure.js";
import type { CliContext } from "../context.js";
import { loadSettings } from "../settings.js";
import { addMachineFlags, type MachineFlags } from "../spec-flags.js";

/** Apply `fn` to each name; print each name done (like docker); the first error decides the exit code. */
async function eachName(ctx: CliContext, names: string[], fn: (name: string) => Promise<void>): Promise<void> {
  let firstError: unknown;
  for (const name of names) {
    try {
      await fn(name);
      process.stdout.write(`${name}\n`);
    } catch (err) {
      firstError ??= err;
      if (names.length > 1) ctx.reportError(err);
    }
  }
  if (firstError !== undefined) {
    if (names.length > 1) throw new SkiffError("ERR_SKIFF_USAGE", "some VMs failed (see above)", { cause: firstError, details: { silent: true } });
    throw firstError;
  }
}

export function registerLifecycle(program: Command, ctx: CliContext): void {
  addMachineFlags(
    program
      .command("create")
      .description("create a VM without starting it")
      .argument("<image>", "image to boot (built in: base)")
      .argument("[command...]", "command `skiff run` would run; kept for reference")
      .passThroughOptions(),
  ).action(async (image: string, command: string[], flags: MachineFlags) => {
    const { createOptionsFrom } = await import("../machine-options.js");
    const skiff = await ctx.client();
    const info = await skiff.create(createOptionsFrom(image, command, flags, await loadSettings()));
    process.stdout.write(`${info.name}\n`);
  });

  program
    .command("start")
    .description("start stopped VMs (waits until each answers), resume hibernated ones, or resume paused ones")
    .argument("<names...>")
    .option("--cold", "boot: a hibernated VM from its disk (its saved memory is dropped), a new one without its image's boot snapshot")
    .action(async (names: string[], flags: { cold?: boolean }) => {
      const skiff = await ctx.client();
      await eachName(ctx, names, async (n) => void (await skiff.start(n, { cold: flags.cold === true })));
    });

  program
    .command("stop")
    .description("stop VMs: ask the guest to power off, then SIGTERM, then SIGKILL")
    .argument("<names...>")
    .option("-t, --timeout <seconds>", "how long the guest gets to power off", "10")
    .option("--hibernate", "save the guest's memory to disk and end QEMU; `skiff start` resumes it where it was")
    .action(async (names: string[], flags: { timeout: string; hibernate?: boolean }) => {
      const timeoutMs = parseDuration(flags.timeout, "--timeout");
      const skiff = await ctx.client();
      await eachName(ctx, names, async (n) => void (await skiff.stop(n, { timeoutMs, hibernate: flags.hibernate === true })));
    });

  // docker says pause/unpause, vmctl suspend/resume: both work.
  for (const verb of [
    { name: "pause", alias: "suspend", what: "pause VMs: their guests stop, keeping their memory, until `skiff unpause`" },
    { name: "unpause", alias: "resume", what: "let paused VMs run again (also those a full host disk paused, once there is space)" },
  ] as const) {
    program
      .command(verb.name)
      .alias(verb.alias)
      .description(verb.what)
      .argument("<names...>")
      .action(async (names: string[]) => {
        const skiff = await ctx.client();
        await eachName(ctx, names, async (n) => void (await skiff[verb.name](n)));
      });
  }

  program
    .command("restart")
    .description("stop and start VMs")
    .argument("<names...>")
    .option("-t, --timeout <seconds>", "how long the guest gets to power off", "10")
    .action(async (names: string[], flags: { timeout: string }) => {
      const timeoutMs = parseDuration(flags.timeout, "--timeout");
      const skiff = await ctx.client();
      await eachName(ctx, names, async (n) => void (await skiff.restart(n, { stopTimeoutMs: timeoutMs })));
    });

  program
    .command("kill")
    .description("send a signal to VMs' QEMU processes (default KILL: pull the plug)")
    .argument("<names...>")
    .option("-s, --signal <signal>", "signal name or number", "KILL")
    .action(async (names: string[], flags: { signal: string }) => {
      const signal = parseSignal(flags.signal, "--signal").number;
      const skiff = await ctx.client();
      await eachName(ctx, names, async (n) => void (await skiff.kill(n, { signal })));
    });

  program
    .command("rm")
    .description("remove VMs and everything they own (disk, keys, sockets, logs)")
    .argument("<names...>")
    .option("-f, --force", "kill and remove running VMs")
    .action(async (names: string[], flags: { force?: boolean }) => {
      const skiff = await ctx.client();
      await eachName(ctx, names, (n) => skiff.remove(n, { force: flags.force === true }));
    });
}

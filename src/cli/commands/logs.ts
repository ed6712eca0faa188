/** logs (the serial console log) and console (attach to the serial console), here or through a server. */
import type { Command } from "commander";
import { SkiffError } from "../../pure.js";
import type { CliContext } from "../context.js";

export function registerLogs(program: Command, ctx: CliContext): void {
  program
    .command("logs")
    .description("print a VM's serial console log (kernel and init messages, the main command's output)")
    .argument("<name>")
    .option("-f, --follow", "keep printing as the log grows, until the VM stops")
    .option("-n, --lines <n>", "only the last N lines")
    .option("--provision", "the log of the VM's provisioners (projects) instead")
    .action(async (name: string, flags: { follow?: boolean; lines?: string; provision?: boolean }) => {
      let lines: number | undefined;
      if (flags.lines !== undefined) {
        lines = Number(flags.lines);
        if (!Number.isInteger(lines) || lines < 0) throw new SkiffError("ERR_SKIFF_USAGE", `not a line count: ${flags.lines}`, { place: "--lines" });
      }
      const skiff = await ctx.client();
      const stop = new AbortController();
      const onSigint = () => stop.abort();
      process.once("SIGINT", onSigint);
      try {
        const log = await skiff.logs(name, { follow: flags.follow === true, provision: flags.provision === true, signal: stop.signal, ...(lines === undefined ? {} : { lines }) });
        for await (const chunk of log) process.stdout.write(chunk as Buffer);
      } catch (err) {
        if (!stop.signal.aborted) throw err;
      } finally {
        process.off("SIGINT", onSigint);
      }
    });

  program
    .command("console")
    .description("attach to a VM's serial console (Ctrl-] detaches)")
    .argument("<name>")
    .action(async (name: string) => {
      const con = await (await ctx.client()).console(name);
      const sock = { write: (d: Buffer) => con.input.write(d), destroy: () => con.close() };
      const stdin = process.stdin;
      if (stdin.isTTY) stdin.setRawMode(true);
      process.stderr.write(`Connected to ${name}'s console. Press Ctrl-] to detach.\r\n`);
      await new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          const i = chunk.indexOf(0x1d);
          if (i >= 0) {
            if (i > 0) sock.write(chunk.subarray(0, i));
            finish();
            return;
          }
          sock.write(chunk);
        };
        const finish = () => {
          stdin.off("data", onData);
          if (stdin.isTTY) stdin.setRawMode(false);
          stdin.pause();
          sock.destroy();
          resolve();
        };
        stdin.on("data", onData);
        stdin.on("end", finish);
        con.output.on("data", (d: Buffer) => process.stdout.write(d));
        con.output.on("close", finish);
        con.output.on("end", finish);
      });
      process.stderr.write("\r\nDetached.\n");
    });
}

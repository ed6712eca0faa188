/** logs (the serial console log) and console (attach to the serial console). */
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { qemuRuns, SkiffError, vmFiles } from "../../pure.js";
import type { CliContext } from "../context.js";

function lastLines(text: string, n: number): string {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.slice(Math.max(0, lines.length - n)).join("\n") + (lines.length > 0 ? "\n" : "");
}

async function follow(path: string, from: number, stillRunning: () => Promise<boolean>): Promise<void> {
  let offset = from;
  for (;;) {
    const size = existsSync(path) ? (await stat(path)).size : 0;
    if (size > offset) {
      const fh = await open(path, "r");
      const buf = Buffer.alloc(size - offset);
      await fh.read(buf, 0, buf.length, offset);
      await fh.close();
      process.stdout.write(buf);
      offset = size;
    } else if (size < offset) {
      offset = 0; // the log was replaced (the VM was removed and made again): start over
    } else if (!(await stillRunning())) {
      return;
    }
    await sleep(200);
  }
}

export function registerLogs(program: Command, ctx: CliContext): void {
  program
    .command("logs")
    .description("print a VM's serial console log (kernel and init messages, the main command's output)")
    .argument("<name>")
    .option("-f, --follow", "keep printing as the log grows, until the VM stops")
    .option("-n, --lines <n>", "only the last N lines")
    .option("--provision", "the log of the VM's provisioners (projects) instead")
    .action(async (name: string, flags: { follow?: boolean; lines?: string; provision?: boolean }) => {
      const skiff = await ctx.skiff();
      const info = await skiff.inspect(name);
      const path = flags.provision === true ? join(info.dir, vmFiles.provisionLog) : info.consoleLog;
      const text = existsSync(path) ? await readFile(path, "utf8") : "";
      let out = text;
      if (flags.lines !== undefined) {
        const n = Number(flags.lines);
        if (!Number.isInteger(n) || n < 0) throw new SkiffError("ERR_SKIFF_USAGE", `not a line count: ${flags.lines}`, { place: "--lines" });
        out = lastLines(text, n);
      }
      process.stdout.write(out);
      if (flags.follow === true) {
        await follow(path, Buffer.byteLength(text), async () => qemuRuns((await skiff.inspect(name)).state));
      }
    });

  program
    .command("console")
    .description("attach to a VM's serial console (Ctrl-] detaches)")
    .argument("<name>")
    .action(async (name: string) => {
      const info = await (await ctx.skiff()).inspect(name);
      if (!qemuRuns(info.state)) {
        throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, { hint: `start it with \`skiff start ${name}\``, place: name });
      }
      const { connect } = await import("node:net");
      const sock = connect(join(info.dir, vmFiles.consoleSocket));
      await new Promise<void>((resolve, reject) => {
        sock.once("connect", resolve);
        sock.once("error", reject);
      });
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
        sock.on("data", (d) => process.stdout.write(d));
        sock.on("close", finish);
      });
      process.stderr.write("\r\nDetached.\n");
    });
}

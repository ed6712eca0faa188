/**
 * Run a filter command with stdin and stdout attached to files: for big
 * binary streams (kernel images, archives) that should not pass through
 * JavaScript memory as strings.
 */
import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { SkiffError } from "../errors.js";

export interface SpawnToFileOptions {
  command: string;
  args: string[];
  stdinPath?: string;
  stdoutPath: string;
  /** Debian package that provides the command, for the hint when it is missing. */
  debianPackage?: string;
}

export async function spawnToFile(opts: SpawnToFileOptions): Promise<void> {
  const input = opts.stdinPath === undefined ? undefined : await open(opts.stdinPath, "r");
  const output = await open(opts.stdoutPath, "w");
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(opts.command, opts.args, { stdio: [input?.fd ?? "ignore", output.fd, "pipe"] });
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        if (stderr.length < 4096) stderr += chunk.toString();
      });
      child.on("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") {
          reject(
            new SkiffError("ERR_SKIFF_TOOL_MISSING", `${opts.command} not found on PATH`, {
              hint: opts.debianPackage === undefined ? "run ./setup.sh" : `run ./setup.sh (or apt-get install ${opts.debianPackage})`,
            }),
          );
        } else reject(err);
      });
      child.on("close", (code) => {
        if (code === 0) resolve();
        else reject(new SkiffError("ERR_SKIFF_HOST", `${opts.command} ${opts.args.join(" ")} failed (exit ${code}): ${stderr.trim()}`));
      });
    });
  } finally {
    await input?.close();
    await output.close();
  }
}

/**
 * `skiff serve` started under the harness as a user starts it (the built
 * CLI, on 127.0.0.1:0 with its token file), for tests that drive it
 * through SkiffHttpClient.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Harness } from "./harness.js";

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** The token file's (made at the first start on TCP); undefined before any. */
  token: string | undefined;
  /** SIGTERM, resolving with the exit code. */
  stop(): Promise<number | null>;
}

/** Start `skiff serve ARGS` and wait for its "listening on URL" line. */
export async function startServe(h: Harness, args: string[] = ["--listen", "127.0.0.1:0"]): Promise<ServeProcess> {
  const child = h.spawn(["serve", ...args]);
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)\n/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`skiff serve exited ${code}: ${err}`)));
  });
  const stop = () =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.once("exit", (code) => resolve(code));
      child.kill("SIGTERM");
    });
  const tokenFile = join(h.home, "serve-token");
  return { child, url, token: existsSync(tokenFile) ? readFileSync(tokenFile, "utf8").trim() : undefined, stop };
}

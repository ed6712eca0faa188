/** `skiff serve` as a child of a VM test, on the harness's home: started until it says where it listens, and stopped. */
import type { ChildProcess } from "node:child_process";
import type { Harness } from "./harness.js";

export async function serveChild(h: Harness, args: string[] = ["--listen", "127.0.0.1:0"]): Promise<{ child: ChildProcess; url: string }> {
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
  return { child, url };
}

/** SIGTERM, and wait for the exit (nothing when it has exited already). */
export async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null) return;
  await new Promise((resolve) => {
    child.once("exit", resolve);
    child.kill("SIGTERM");
  });
}

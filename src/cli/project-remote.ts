/**
 * Project verbs through a server (`skiff up --host URL`): the project file
 * is read here and posted with its directory, as `docker compose` with
 * DOCKER_HOST sends its file and leaves paths to the daemon's host. Several
 * files (-f a -f b) go as paths, for a server that sees the same paths.
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type { ProjectSource } from "../api/project-client.js";
import type { SkiffHttpClient } from "../api/client.js";
import { discoverProjectFiles } from "../pure.js";
import type { CliContext } from "./context.js";
import type { ProjectFlags } from "./project-open.js";
import { taskReporter } from "./task-list.js";

export interface RemoteProject {
  client: SkiffHttpClient;
  source: ProjectSource;
  /** Task and output events to the terminal (nothing under --json), and the ignored keys' warnings. */
  listeners: Parameters<SkiffHttpClient["projectUp"]>[1];
  finish(): void;
}

/** The project the flags name, on the server; undefined when commands run here. */
export async function remoteProject(ctx: CliContext, flags: ProjectFlags): Promise<RemoteProject | undefined> {
  const client = await ctx.remote();
  if (client === undefined) return undefined;
  const files = flags.file.length > 0 ? flags.file.map((f) => resolve(f)) : (await discoverProjectFiles(process.cwd())).map((f) => f.path);
  const name = flags.projectName === undefined ? {} : { projectName: flags.projectName };
  const source: ProjectSource =
    files.length === 1
      ? { content: await readFile(files[0]!, "utf8"), filename: basename(files[0]!), directory: dirname(files[0]!), ...name }
      : { files, directory: process.cwd(), ...name };
  const onWarning = (w: { place?: string; message: string }) => process.stderr.write(`skiff: warning (${w.place ?? "?"}): ${w.message}\n`);
  if (ctx.flags.json) return { client, source, listeners: {}, finish: () => undefined };
  const reporter = taskReporter();
  return {
    client,
    source,
    listeners: { onTask: (e) => reporter.task(e), onOutput: (e) => reporter.output(e), onWarning },
    finish: () => reporter.close(),
  };
}

/** `fn` with the remote project, its task list closed however it ends. */
export async function withRemote<T>(remote: RemoteProject, fn: (r: RemoteProject) => Promise<T>): Promise<T> {
  try {
    return await fn(remote);
  } finally {
    remote.finish();
  }
}

/** The VMs' console logs from the server, each line prefixed with its VM, until they stop or `signal` fires. */
export async function followRemoteLogs(client: SkiffHttpClient, names: readonly string[], signal: AbortSignal): Promise<void> {
  const width = Math.max(0, ...names.map((n) => n.length));
  await Promise.all(
    names.map(async (name) => {
      const prefix = `${name.padEnd(width)} | `;
      let partial = "";
      try {
        for await (const chunk of await client.logs(name, { follow: true, signal })) {
          const lines = (partial + (chunk as Buffer).toString("utf8")).split("\n");
          partial = lines.pop() ?? "";
          for (const l of lines) process.stdout.write(prefix + l + "\n");
        }
      } catch (err) {
        if (!signal.aborted) throw err;
      }
      if (partial !== "") process.stdout.write(prefix + partial + "\n");
    }),
  );
}

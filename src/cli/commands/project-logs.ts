/**
 * The project's console logs, each line prefixed with its VM's name (as
 * compose does), optionally followed until the VMs stop or the signal fires.
 * Each VM's log is read through the library (`Skiff.logs`, as `skiff logs`
 * reads it): the rotated console.log.1 too, at most its bound of history,
 * and followed across a rotation.
 */
import { StringDecoder } from "node:string_decoder";
import type { Project } from "../../project/project.js";

export interface FollowOptions {
  follow: boolean;
  signal?: AbortSignal;
  /** Provision logs instead of console logs. */
  provision?: boolean;
  /** Only the last N lines of each VM's log before following. */
  tail?: number;
}

/** One VM's log as prefixed lines: a line is printed once whole; what is left at the end, with a newline. */
class PrefixedLines {
  readonly #decoder = new StringDecoder("utf8");
  #partial = "";
  constructor(readonly prefix: string) {}

  write(chunk: Buffer): void {
    const lines = (this.#partial + this.#decoder.write(chunk)).split("\n");
    this.#partial = lines.pop() ?? "";
    for (const l of lines) process.stdout.write(this.prefix + l + "\n");
  }

  end(): void {
    const rest = this.#partial + this.#decoder.end();
    if (rest !== "") process.stdout.write(this.prefix + rest + "\n");
  }
}

export async function followLogs(project: Project, services: readonly string[], opts: FollowOptions): Promise<void> {
  const vms = await project.vms(services);
  const width = Math.max(0, ...vms.map((v) => v.name.length));
  const logs = await Promise.all(
    vms.map(async (vm) => ({
      out: new PrefixedLines(`${vm.name.padEnd(width)} | `),
      chunks: (await project.skiff.logs(vm.name, {
        follow: opts.follow,
        ...(opts.provision === true ? { provision: true } : {}),
        ...(opts.tail === undefined ? {} : { lines: opts.tail }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      }))[Symbol.asyncIterator](),
    })),
  );
  // What each log holds already, VM by VM in order (a log's first chunk is its history); then, following, what
  // each VM writes, as it comes, until it stops or the signal fires.
  for (const { out, chunks } of logs) {
    const first = await chunks.next();
    if (!first.done) out.write(first.value as Buffer);
    if (!opts.follow) out.end();
  }
  if (!opts.follow) {
    await Promise.all(logs.map(({ chunks }) => chunks.return?.()));
    return;
  }
  await Promise.all(
    logs.map(async ({ out, chunks }) => {
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) out.write(next.value as Buffer);
      out.end();
    }),
  );
}

/**
 * The client's side of /projects and POST /images/import (SkiffHttpClient's
 * projectUp, projectDown, projectPs… and importImage call these): requests
 * built from the project verbs' own options, and the JSON-lines answers read
 * back into the library's results, with the events handed to callbacks as
 * a local Project emits them. Failures are the SkiffErrors the server
 * names, a project file's place (skiff.yml:3:5) kept in `place`.
 */
import { createReadStream } from "node:fs";
import { basename } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { stat } from "node:fs/promises";
import { SkiffError } from "../pure.js";
import type { Skiff } from "../index.js";
import type { DownOptions, ServiceStatus } from "../project/project.js";
import type { OutputEvent, TaskEvent } from "../project/events.js";
import type { ConfigWarning } from "../project/types.js";
import type { UpOptions, UpResult } from "../project/up.js";
import { fromErrorBody, type ErrorBody } from "./errors.js";
import type { ProjectSource } from "./project-schemas.js";
import type { Transport } from "./transport.js";

export type { ProjectSource };

/** What Skiff.images.import resolves with. */
export type ImportResult = Awaited<ReturnType<Skiff["images"]["import"]>>;

/** What a project verb tells as it works: the Project's own events, and the file's warnings. */
export interface ProjectListeners {
  onTask?: (e: TaskEvent) => void;
  onOutput?: (e: OutputEvent) => void;
  /** Keys of the file with no meaning here, each once (the CLI prints them to stderr). */
  onWarning?: (w: ConfigWarning) => void;
}

export type ProjectVerb = "stop" | "start" | "restart" | "pause" | "unpause";

interface Line {
  kind: string;
  event?: unknown;
  warning?: ConfigWarning;
  result?: unknown;
  image?: unknown;
  error?: ErrorBody;
}

/** The lines of a JSON-lines answer, parsed. */
async function* jsonLines(res: Readable): AsyncGenerator<Line> {
  for await (const text of createInterface({ input: res, crlfDelay: Infinity })) {
    if (text.trim() !== "") yield JSON.parse(text) as Line;
  }
}

/** POST a project verb and read its stream to the result. */
export async function projectCall<T>(t: Transport, path: string, body: object, on: ProjectListeners): Promise<T> {
  const res = await t.send("POST", path, { json: body });
  for await (const line of jsonLines(res)) {
    if (line.kind === "task") on.onTask?.(line.event as TaskEvent);
    else if (line.kind === "output") on.onOutput?.(line.event as OutputEvent);
    else if (line.kind === "warning") on.onWarning?.(line.warning!);
    else if (line.kind === "done") return line.result as T;
    else if (line.kind === "error") throw fromErrorBody(line.error, 0);
  }
  throw fromErrorBody({ code: "ERR_SKIFF_HOST", message: `${path} ended without a result (the server went away?)` }, 0);
}

/** The body of a verb: the source's fields beside the verb's options (undefined ones left out). */
export function verbBody(source: ProjectSource, opts: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries({ ...source, ...opts }).filter(([, v]) => v !== undefined));
}

export function projectUp(t: Transport, source: ProjectSource, opts: UpOptions & ProjectListeners): Promise<UpResult> {
  const { onTask, onOutput, onWarning, ...up } = opts;
  return projectCall(t, "/projects/up", verbBody(source, up), { onTask, onOutput, onWarning });
}

export function projectDown(t: Transport, source: ProjectSource, opts: DownOptions & ProjectListeners): Promise<{ vms: string[]; networks: string[]; volumes: string[]; images: string[] }> {
  const { onTask, onOutput, onWarning, ...down } = opts;
  return projectCall(t, "/projects/down", verbBody(source, down), { onTask, onOutput, onWarning });
}

export function projectLifecycle(t: Transport, verb: ProjectVerb, source: ProjectSource, services: readonly string[], on: ProjectListeners): Promise<string[]> {
  return projectCall(t, `/projects/${verb}`, verbBody(source, services.length === 0 ? {} : { services: [...services] }), on);
}

export function projectPs(t: Transport, source: ProjectSource, opts: { all?: boolean }): Promise<ServiceStatus[]> {
  return t.json("POST", "/projects/ps", { json: verbBody(source, opts) });
}

export interface ImportImageOptions {
  name?: string;
  /** What the archive is called (for the default name); a path given as the archive gives its own. */
  filename?: string;
  platform?: string;
  onBuild?: (e: unknown) => void;
}

/** Upload an archive (a path on this machine, bytes or a stream) to POST /images/import; resolves with what was imported. */
export async function importImage(t: Transport, archive: string | Buffer | Readable, opts: ImportImageOptions): Promise<ImportResult> {
  if (typeof archive === "string") await checkArchiveFile(archive);
  const filename = opts.filename ?? (typeof archive === "string" ? basename(archive) : undefined);
  const query = new URLSearchParams(Object.entries({ name: opts.name, filename, platform: opts.platform }).filter((e): e is [string, string] => e[1] !== undefined));
  const body = typeof archive === "string" ? createReadStream(archive) : archive;
  const qs = query.size === 0 ? "" : `?${query.toString()}`;
  const res = await t.send("POST", `/images/import${qs}`, { body, contentType: "application/x-tar" });
  for await (const line of jsonLines(res)) {
    if (line.kind === "build") opts.onBuild?.(line.event);
    else if (line.kind === "done") return line.image as ImportResult;
    else if (line.kind === "error") throw fromErrorBody(line.error, 0);
  }
  throw fromErrorBody({ code: "ERR_SKIFF_HOST", message: "the import ended without a result (the server went away?)" }, 0);
}

/** A path to upload must be a file here: a directory (which a local import takes) is not sent. */
async function checkArchiveFile(path: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (st === undefined) throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `nothing to import at ${path}`, { place: path });
  if (!st.isFile()) {
    throw new SkiffError("ERR_SKIFF_USAGE", `${path} is not a file`, { place: path, hint: "a server imports an archive: tar a root filesystem directory first (tar -C DIR -cf rootfs.tar .)" });
  }
}

/**
 * How the client reaches a server: `unix:/path` or `http(s)://host:port`,
 * over node:http(s) (which speak unix sockets, unlike fetch without an
 * extra dispatcher), with the bearer token on every request. Answers of
 * 4xx/5xx become the SkiffError their body names.
 */
import { request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { SkiffError } from "../pure.js";
import { fromErrorBody } from "./errors.js";

export type ServerTarget = { kind: "unix"; socketPath: string } | { kind: "http" | "https"; host: string; port: number };

export interface TransportOptions {
  /** `unix:/path/skiff.sock`, `http://127.0.0.1:7070`, `https://host:7443`. */
  url: string;
  token?: string;
  /** https: a CA to trust (a self-signed server certificate). */
  ca?: Buffer | string;
}

export function parseServerUrl(url: string): ServerTarget {
  if (url.startsWith("unix:")) {
    const socketPath = url.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    if (socketPath === "") throw new SkiffError("ERR_SKIFF_USAGE", `no socket path in ${url}`, { place: "url", hint: "e.g. unix:/var/lib/skiff/skiff.sock" });
    return { kind: "unix", socketPath };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SkiffError("ERR_SKIFF_USAGE", `not a server URL: ${url}`, { place: "url", hint: "use unix:/path, http://host:port or https://host:port" });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new SkiffError("ERR_SKIFF_USAGE", `not a server URL: ${url}`, { place: "url", hint: "use unix:/path, http://host:port or https://host:port" });
  }
  const kind = parsed.protocol === "https:" ? "https" : "http";
  return { kind, host: parsed.hostname.replace(/^\[|\]$/g, ""), port: parsed.port === "" ? (kind === "https" ? 443 : 80) : Number(parsed.port) };
}

export interface SendOptions {
  json?: unknown;
  /** A raw body (files, tars); streamed. */
  body?: Buffer | Readable;
  contentType?: string;
  signal?: AbortSignal;
}

export class Transport {
  readonly target: ServerTarget;
  readonly #token: string | undefined;
  readonly #ca: Buffer | string | undefined;

  constructor(opts: TransportOptions) {
    this.target = parseServerUrl(opts.url);
    this.#token = opts.token;
    this.#ca = opts.ca;
  }

  get headers(): Record<string, string> {
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` };
  }

  /** The WebSocket URL of `path` and the options `ws` takes for it. */
  webSocket(path: string): { url: string; options: { headers: Record<string, string>; ca?: Buffer | string } } {
    const t = this.target;
    const url = t.kind === "unix" ? `ws+unix:${t.socketPath}:${path}` : `${t.kind === "https" ? "wss" : "ws"}://${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}${path}`;
    return { url, options: { headers: this.headers, ...(this.#ca === undefined ? {} : { ca: this.#ca }) } };
  }

  /** Send a request; a 2xx answer is returned unread, any other becomes its SkiffError. */
  async send(method: string, path: string, opts: SendOptions = {}): Promise<IncomingMessage> {
    const t = this.target;
    const payload = opts.json === undefined ? opts.body : Buffer.from(JSON.stringify(opts.json));
    const headers: Record<string, string> = { ...this.headers };
    if (opts.json !== undefined) headers["content-type"] = "application/json";
    else if (opts.contentType !== undefined) headers["content-type"] = opts.contentType;
    if (Buffer.isBuffer(payload)) headers["content-length"] = String(payload.length);
    const base: RequestOptions = { method, path, headers, ...(opts.signal === undefined ? {} : { signal: opts.signal }) };
    const options: RequestOptions =
      t.kind === "unix" ? { ...base, socketPath: t.socketPath } : { ...base, host: t.host, port: t.port, ...(this.#ca === undefined ? {} : { ca: this.#ca }) };
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (t.kind === "https" ? httpsRequest : httpRequest)(options, resolve);
      // An abort the caller asked for stays the AbortError it expects.
      req.once("error", (err) => reject(err.name === "AbortError" ? err : unreachable(err, t)));
      if (payload instanceof Readable) {
        payload.once("error", (err) => req.destroy(err));
        payload.pipe(req);
      } else req.end(payload);
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    const text = await readText(res);
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: fromErrorBody says what came instead
    }
    throw fromErrorBody(body, status);
  }

  async json<T>(method: string, path: string, opts: SendOptions = {}): Promise<T> {
    return JSON.parse(await readText(await this.send(method, path, opts))) as T;
  }
}

export async function readText(res: Readable): Promise<string> {
  return (await readAll(res)).toString("utf8");
}

export async function readAll(res: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function unreachable(err: Error, t: ServerTarget): SkiffError {
  const where = t.kind === "unix" ? `unix:${t.socketPath}` : `${t.kind}://${t.host}:${t.port}`;
  return new SkiffError("ERR_SKIFF_HOST", `cannot reach skiff serve at ${where}: ${err.message}`, {
    hint: "check that `skiff serve` runs there (and the URL)",
    cause: err,
  });
}

/** `host:port` alone means http, as a browser would take it. */
export function serverUrl(host: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(host) && !/^[^/]+:\d+$/.test(host) ? host : `http://${host}`;
}

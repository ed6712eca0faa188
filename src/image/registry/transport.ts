/**
 * HTTP to one registry: which scheme, deadlines, redirects, and the 401
 * dance. Loopback registries (localhost, 127.0.0.0/8, ::1) are spoken to in
 * plain HTTP without a flag, as Docker does; any other host only over HTTPS
 * unless the user listed it as insecure (then plain HTTP). Redirects are
 * followed by hand so credentials go only to the registry's own origin,
 * never to the storage backend a blob redirect points at.
 */
import { SkiffError } from "../../errors.js";
import { authError, Authenticator, type TokenAnswer } from "./auth.js";
import type { CredentialOptions, Credentials } from "./credentials.js";
import { httpFetch, type RegistryFetch, type RegistryResponse } from "./http-fetch.js";
import { dockerHubRegistry } from "./reference.js";

export interface TransportOptions extends CredentialOptions {
  /** "docker.io", "ghcr.io", "127.0.0.1:5000". */
  registry: string;
  /** Hosts ("host" or "host:port") to speak plain HTTP to; SKIFF_INSECURE_REGISTRIES adds to it. */
  insecureRegistries?: readonly string[];
  /** Explicit credentials; null for anonymous; undefined to look them up. */
  credentials?: Credentials | null;
  /** Until response headers arrive (default 30 s). */
  requestTimeoutMs?: number;
  /** Longest silence inside a response body (default 60 s). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /** Stand-in for node:http (http-fetch.ts); tests count requests with one built on fetch. */
  fetch?: RegistryFetch;
}

export interface RequestOptions {
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  /** Token scope, e.g. "repository:library/alpine:pull"; none for /v2/. */
  scope?: string;
}

/** A response whose body is still guarded by the idle timer; call `done()` when finished with it. */
export interface GuardedResponse {
  response: RegistryResponse;
  /** Aborted on a stall or by the caller's signal: pass it to networkError for the reason. */
  signal: AbortSignal;
  /** Restart the idle timer (each chunk read). */
  touch(): void;
  done(): void;
}

const maxRedirects = 5;
/** What of a token service's answer is read: a token is a few KB at most. */
const maxTokenAnswer = 1024 * 1024;
const userAgent = `skiff (node ${process.versions.node})`;

export class Transport {
  readonly registry: string;
  readonly baseUrl: string;
  readonly auth: Authenticator;
  readonly #opts: TransportOptions;
  readonly #fetch: RegistryFetch;

  constructor(opts: TransportOptions) {
    this.registry = opts.registry;
    this.#opts = opts;
    this.#fetch = opts.fetch ?? httpFetch;
    const insecure = [...(opts.insecureRegistries ?? []), ...envInsecure(opts.env ?? process.env)];
    this.baseUrl = registryBaseUrl(opts.registry, insecure);
    this.auth = new Authenticator({
      ...opts,
      fetchToken: (url, headers) => this.#fetchToken(url, headers),
    });
  }

  /** True once the caller's signal has fired: nothing more is worth trying. */
  get aborted(): boolean {
    return this.#opts.signal?.aborted ?? false;
  }

  /** A request to the registry API (`path` starts with /v2/), authenticated as needed. */
  async request(path: string, opts: RequestOptions = {}): Promise<GuardedResponse> {
    const url = new URL(path, this.baseUrl);
    let retried = false;
    for (;;) {
      const auth = await this.auth.header(opts.scope);
      const guarded = await this.#send(url, { ...opts, headers: { ...opts.headers, ...(auth ? { authorization: auth } : {}) } });
      const { response } = guarded;
      if (response.status !== 401 && response.status !== 403) return guarded;
      const why = await errorSummary(response);
      guarded.done();
      if (response.status === 401 && !retried && (await this.auth.answer(response, opts.scope))) {
        retried = true;
        continue;
      }
      throw authError(this.registry, await this.auth.credentials(), `${url.pathname}: HTTP ${response.status}${why ? ` (${why})` : ""}`);
    }
  }

  /**
   * A token service's answer, read under the request's deadlines; their
   * timers end with it (a token response left to its idle timer kept a
   * CLI that had pulled from Docker Hub alive for a minute after its work).
   */
  async #fetchToken(url: URL, headers: Record<string, string>): Promise<TokenAnswer> {
    const guarded = await this.#send(url, { headers });
    try {
      const { status, ok } = guarded.response;
      if (!ok) return { status, ok, text: "" };
      const tooLarge = () => new SkiffError("ERR_SKIFF_REGISTRY", `the token service ${url.origin} for ${this.registry} answered more than ${maxTokenAnswer} bytes`);
      return { status, ok, text: (await this.readBody(guarded, maxTokenAnswer, tooLarge)).toString("utf8") };
    } finally {
      if (!guarded.response.bodyUsed) await guarded.response.body?.cancel().catch(() => {});
      guarded.done();
    }
  }

  /**
   * A small body (a manifest, a token) read whole, each chunk restarting the
   * idle timer; `tooLarge` once it passes `maxBytes`. A failed read is thrown
   * as networkError makes it. The caller ends the guard.
   */
  async readBody(guarded: GuardedResponse, maxBytes: number, tooLarge: () => SkiffError): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of guarded.response.body ?? []) {
        guarded.touch();
        size += chunk.byteLength;
        if (size > maxBytes) throw tooLarge();
        chunks.push(Buffer.from(chunk));
      }
    } catch (err) {
      throw this.networkError(err, new URL(guarded.response.url || this.baseUrl), guarded.signal);
    }
    return Buffer.concat(chunks);
  }

  /** One fetch with its deadline, following redirects; Authorization only to the registry's origin. */
  async #send(start: URL, opts: RequestOptions): Promise<GuardedResponse> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const headers = { ...opts.headers };
      if (url.origin !== start.origin) delete headers.authorization;
      const guarded = await this.#fetchOnce(url, opts.method ?? "GET", headers);
      const { response } = guarded;
      const location = response.headers.get("location");
      if (![301, 302, 303, 307, 308].includes(response.status) || !location) return guarded;
      guarded.done();
      await response.body?.cancel().catch(() => {});
      if (hop >= maxRedirects) {
        throw new SkiffError("ERR_SKIFF_REGISTRY", `too many redirects from ${this.registry} (last: ${url.href})`);
      }
      url = new URL(location, url);
    }
  }

  async #fetchOnce(url: URL, method: string, headers: Record<string, string>): Promise<GuardedResponse> {
    const controller = new AbortController();
    const signal = this.#opts.signal ? AbortSignal.any([controller.signal, this.#opts.signal]) : controller.signal;
    const requestMs = this.#opts.requestTimeoutMs ?? 30_000;
    const idleMs = this.#opts.idleTimeoutMs ?? 60_000;
    // The timers only guard a request: unref'd, one left running never holds a process open (the socket does while it is in use).
    const expire = (ms: number, what: string) =>
      setTimeout(() => controller.abort(new SkiffError("ERR_SKIFF_TIMEOUT", `${what} from ${this.registry} after ${ms} ms: ${url.href}`, {
        hint: "the registry is slow or unreachable; retry, or check the network",
        place: this.registry,
      })), ms).unref();
    let timer = expire(requestMs, "no response");
    let response: RegistryResponse;
    try {
      response = await this.#fetch(url, { method, headers: { "user-agent": userAgent, ...headers }, redirect: "manual", signal });
    } catch (err) {
      clearTimeout(timer);
      throw this.networkError(err, url, signal);
    }
    clearTimeout(timer);
    timer = expire(idleMs, "response stalled");
    return {
      response,
      signal,
      touch: () => timer.refresh(),
      done: () => clearTimeout(timer),
    };
  }

  /** A failed fetch or body read as the error a user can act on. */
  networkError(err: unknown, url: URL, signal?: AbortSignal): unknown {
    if (err instanceof SkiffError) return err;
    if (signal?.aborted) return signal.reason ?? err;
    if (this.#opts.signal?.aborted) return this.#opts.signal.reason ?? err;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code ?? (err as { code?: string }).code;
    const detail = code ?? cause?.message ?? (err as Error).message;
    const tls = typeof code === "string" && /^(ERR_SSL|ERR_TLS|EPROTO|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO|CERT_)/.test(code);
    return new SkiffError("ERR_SKIFF_REGISTRY", `cannot reach registry ${this.registry} (${url.origin}): ${detail}`, {
      hint: tls
        ? `TLS failed; if ${this.registry} speaks plain HTTP, mark it insecure (--insecure-registry ${this.registry} or SKIFF_INSECURE_REGISTRIES)`
        : code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN"
          ? `check that the registry is running and the name is right: ${this.registry}`
          : "the connection failed; retry the pull",
      place: this.registry,
      cause: err,
      details: { registry: this.registry, url: url.href, ...(code ? { code } : {}) },
    });
  }
}

/** Where a registry's API lives; Docker Hub's API host differs from its name. */
export function registryBaseUrl(registry: string, insecure: readonly string[] = []): string {
  const host = registry === dockerHubRegistry ? "registry-1.docker.io" : registry;
  const plain = isLoopbackRegistry(registry) || insecure.some((entry) => insecureMatches(entry, registry));
  return `${plain ? "http" : "https"}://${host}/`;
}

/** localhost, 127.0.0.0/8 and ::1, with or without a port. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostPart(registry).toLowerCase();
  if (host === "localhost" || host === "::1") return true;
  const octets = host.split(".");
  return octets.length === 4 && octets[0] === "127" && octets.every((o) => /^\d{1,3}$/.test(o) && Number(o) <= 255);
}

function hostPart(registry: string): string {
  if (registry.startsWith("[")) return registry.slice(1, registry.indexOf("]"));
  const colon = registry.lastIndexOf(":");
  return colon === -1 ? registry : registry.slice(0, colon);
}

/** "host:5000" matches only that port; "host" matches every port. */
function insecureMatches(entry: string, registry: string): boolean {
  const e = entry.trim().replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  return e !== "" && (e === registry || e === hostPart(registry));
}

function envInsecure(env: NodeJS.ProcessEnv): string[] {
  return (env.SKIFF_INSECURE_REGISTRIES ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** The registry's own words from an error body ({"errors":[{"code","message"}]}), if any. */
export async function errorSummary(response: RegistryResponse): Promise<string> {
  if (response.bodyUsed || response.body === null) return "";
  let text: string;
  try {
    text = (await response.text()).slice(0, 4096);
  } catch {
    return "";
  }
  try {
    const body = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const parts = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(": "));
    if (parts.length) return parts.join("; ");
  } catch {
    // not JSON: fall through to the text
  }
  return text.trim().split("\n")[0]?.slice(0, 200) ?? "";
}

/**
 * The little of `fetch` that the registry transport uses (method, headers,
 * manual redirects, an abort signal), over node:http and node:https, for
 * every request of a pull: manifests, tokens and blobs.
 *
 * Why not fetch: Node's fetch, Headers and Response are undici, which Node
 * loads on their first use: ~58 ms of a pull's start here (measured with
 * `new Headers()` in a bare node), before its first request. And reading a
 * body through fetch costs about 2.5 times the CPU of reading the same
 * bytes from node:http (every chunk goes through its own streams
 * machinery); on a pull that is most of the work left besides hashing. So
 * the response here is a class of its own with the part of Response's
 * interface the transport reads (RegistryResponse); a fetch given for tests
 * returns real Responses, which have it too.
 *
 * Unlike fetch, it asks for no compression and decompresses nothing: a
 * blob's digest is of its bytes as stored. Nor does it refuse the Fetch
 * standard's "bad ports" (6000, 6667, ...): a registry may listen there.
 */
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from "node:http";
import type { Agent as HttpsAgent } from "node:https";

/** What the transport reads of a response; Node's Response has all of it. */
export interface RegistryResponse {
  readonly status: number;
  readonly ok: boolean;
  /** The URL answered (a redirect's target is asked for anew by the transport). */
  readonly url: string;
  readonly headers: { get(name: string): string | null };
  readonly body: RegistryBody | null;
  readonly bodyUsed: boolean;
  text(): Promise<string>;
}

export interface RegistryBody extends AsyncIterable<Uint8Array> {
  cancel(): Promise<void>;
}

export interface RegistryRequest {
  method: string;
  headers: Record<string, string>;
  redirect: "manual";
  signal: AbortSignal;
}

/** How the transport makes a request: httpFetch, or a stand-in (tests give one built on fetch). */
export type RegistryFetch = (url: URL, init: RegistryRequest) => Promise<RegistryResponse>;

// Keep-alive: a pull makes several requests to one registry. Idle sockets are unref'd by the agent.
const httpAgent = new HttpAgent({ keepAlive: true });
// node:https (and TLS with it) is loaded on the first https request: loopback registries never need it.
let https: Promise<{ request: typeof import("node:https").request; agent: HttpsAgent }> | undefined;
const loadHttps = () =>
  (https ??= import("node:https").then((m) => ({ request: m.request, agent: new m.Agent({ keepAlive: true }) })));

export const httpFetch: RegistryFetch = async (url, init) => {
  const secure = url.protocol === "https:";
  if (!secure && url.protocol !== "http:") throw new TypeError(`httpFetch: unsupported protocol ${url.protocol}`);
  const tls = secure ? await loadHttps() : undefined;
  const message = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (tls?.request ?? httpRequest)(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: init.method,
        headers: init.headers,
        agent: tls?.agent ?? httpAgent,
        signal: init.signal,
      },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
  return new NodeResponse(message, url.href, init.method === "HEAD");
};

class NodeResponse implements RegistryResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: RegistryBody | null;
  #used = false;

  constructor(message: IncomingMessage, readonly url: string, head: boolean) {
    this.status = message.statusCode ?? 502;
    this.ok = this.status >= 200 && this.status < 300;
    // node joins repeated headers with ", " as fetch does (set-cookie aside, which a registry's answers do not need).
    const fields = message.headers;
    this.headers = {
      get: (name) => {
        const value = fields[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
      },
    };
    if (head || this.status === 204 || this.status === 304) {
      message.resume();
      this.body = null;
      return;
    }
    const take = (): IncomingMessage => {
      if (this.#used) throw new TypeError("the response body was read already");
      this.#used = true;
      return message;
    };
    this.body = {
      [Symbol.asyncIterator]: () => take()[Symbol.asyncIterator](),
      cancel: async () => void message.destroy(),
    };
  }

  get bodyUsed(): boolean {
    return this.#used;
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.body ?? []) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks).toString("utf8");
  }
}

/** A response's body, for one reader (an httpFetch response's is its node stream: no web stream in between). */
export function bodyChunks(response: RegistryResponse): { chunks: AsyncIterable<Uint8Array>; cancel(): Promise<void> } {
  const body = response.body;
  return { chunks: body ?? (async function* () {})(), cancel: async () => void (await body?.cancel().catch(() => {})) };
}

/**
 * Running the API: the hono app on a node HTTP(S) server, WebSockets on its
 * upgrade event, a token on TCP, a 0600 unix socket otherwise, timeouts
 * against slow clients, held agent connections for exec (agents.ts), the
 * sandbox deadline watcher (deadlines.ts), and a shutdown that closes every
 * socket and connection and removes the unix socket.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect } from "node:net";
import { chmod, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { SkiffError, type Skiff, type VmInfo } from "../index.js";
import { toErrorBody } from "../api/errors.js";
import { rawErrorResponse } from "./http.js";
import { AgentConnections } from "./agents.js";
import { DeadlineWatcher } from "./deadlines.js";
import { bodyIsLimited, bodyLimitError, createApp, defaultBodyLimit, type Mount } from "./app.js";
import { listenUrl, type ListenAddress } from "./listen.js";
import { checkBearer } from "./token.js";
import { upgradeHandler } from "./ws.js";

export interface ServeOptions {
  skiff: Skiff;
  listen: ListenAddress;
  /** Required on every request when set (always on TCP). */
  token?: string;
  tls?: { cert: Buffer; key: Buffer };
  version?: string;
  mounts?: Mount[];
  bodyLimitBytes?: number;
  /** How long a client gets to send its request's headers (default 15 s). */
  headersTimeoutMs?: number;
  /** Remove VMs past their sandbox deadline (default true; deadlines.ts). */
  watchDeadlines?: boolean;
  /** Told what went wrong in the background (the deadline watcher), for the server's log. */
  warn?: (message: string) => void;
}

export interface RunningServer {
  /** unix:PATH or http(s)://HOST:PORT, with the port the system chose for port 0. */
  url: string;
  close(): Promise<void>;
}

/** A client gets this long to send its request's headers (a slow-loris client is cut off), and this long for the whole request. */
const defaultHeadersTimeoutMs = 15_000;
const requestTimeoutMs = 300_000;

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  if (opts.listen.kind === "tcp" && opts.token === undefined) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", "a TCP listener without a token");
  }
  const token = opts.token;
  const authorize = token === undefined ? undefined : (header: string | undefined) => checkBearer(header, token);
  const agents = new AgentConnections(opts.skiff);
  const deadlines =
    opts.watchDeadlines === false
      ? undefined
      : new DeadlineWatcher(opts.skiff, {
          onRemoved: (name) => agents.drop(name),
          onError: (err) => opts.warn?.(`sandbox deadlines: ${err instanceof Error ? err.message : String(err)}`),
        });
  const app = createApp({
    skiff: opts.skiff,
    agents,
    ...(deadlines === undefined ? {} : { onDeadline: (vms: VmInfo[]) => deadlines.note(vms) }),
    ...(authorize === undefined ? {} : { authorize }),
    ...(opts.version === undefined ? {} : { version: opts.version }),
    ...(opts.mounts === undefined ? {} : { mounts: opts.mounts }),
    ...(opts.bodyLimitBytes === undefined ? {} : { bodyLimitBytes: opts.bodyLimitBytes }),
  });
  const headersTimeout = opts.headersTimeoutMs ?? defaultHeadersTimeoutMs;
  const timeouts = {
    headersTimeout,
    requestTimeout: Math.max(requestTimeoutMs, headersTimeout),
    // Node looks for late requests this often (30 s by default, longer than the deadline itself).
    connectionsCheckingInterval: Math.min(1_000, headersTimeout),
  };
  const toHono = getRequestListener(app.fetch);
  const limit = opts.bodyLimitBytes ?? defaultBodyLimit;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (declaredTooLarge(req, limit)) return refuseBody(req, res, limit);
    return toHono(req, res);
  };
  const server: Server =
    opts.tls === undefined
      ? createHttpServer(timeouts, handle)
      : (createHttpsServer({ ...timeouts, cert: opts.tls.cert, key: opts.tls.key }, handle) as unknown as Server);
  // Requests node refuses before hono sees them (too slow, headers too big, not HTTP) get coded errors too.
  server.on("clientError", (err: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    socket.end(clientErrorResponse(err));
  });
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  server.on(opts.tls === undefined ? "connection" : "secureConnection", track);
  server.on(
    "upgrade",
    upgradeHandler({
      skiff: opts.skiff,
      agents,
      authorize: (req: IncomingMessage) => (authorize === undefined ? undefined : authorize(req.headers.authorization)),
    }),
  );

  const addr = opts.listen;
  if (addr.kind === "unix") await clearStaleSocket(addr.path);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if (addr.kind === "unix") {
      // Made 0600 from the start (node binds the socket inside listen()): no moment where others could connect.
      const umask = process.umask(0o177);
      try {
        server.listen(addr.path, done);
      } finally {
        process.umask(umask);
      }
    } else server.listen(addr.port, addr.host, done);
  }).catch((err: unknown) => {
    throw listenError(err, listenUrl(addr, opts.tls !== undefined));
  });
  if (addr.kind === "unix") await chmod(addr.path, 0o600);
  const bound = server.address();
  const actual: ListenAddress = addr.kind === "tcp" && typeof bound === "object" && bound !== null ? { ...addr, port: bound.port } : addr;

  deadlines?.start();

  let closing: Promise<void> | undefined;
  return {
    url: listenUrl(actual, opts.tls !== undefined),
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Long streams (events, logs -f, WebSockets) hold their sockets open: end them.
        await Promise.all((opts.mounts ?? []).map((m) => m.close?.()));
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections?.();
        await Promise.all([deadlines?.stop(), agents.closeAll()]);
        await closed;
        if (addr.kind === "unix") await rm(addr.path, { force: true });
      })();
      return closing;
    },
  };
}

function declaredTooLarge(req: IncomingMessage, limit: number): boolean {
  const length = Number(req.headers["content-length"] ?? "0");
  return length > limit && bodyIsLimited(req.method, req.url ?? "/");
}

/**
 * A body declared larger than the limit is refused before any of it is read,
 * and the rest is read and dropped: closing while the client still sends
 * makes its write fail (EPIPE) before it reads the 413. Memory stays flat;
 * the request timeout bounds the time.
 */
function refuseBody(req: IncomingMessage, res: ServerResponse, limit: number): void {
  const body = JSON.stringify(toErrorBody(bodyLimitError(limit)));
  req.resume();
  res.writeHead(413, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function clientErrorResponse(err: Error & { code?: string }): string {
  const [status, reason, error] =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "Request Timeout", new SkiffError("ERR_SKIFF_TIMEOUT", "the request did not arrive in time", { hint: "send the whole request at once" })]
      : err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", new SkiffError("ERR_SKIFF_TOO_LARGE", "the request's headers are too large")]
        : [400, "Bad Request", new SkiffError("ERR_SKIFF_USAGE", `not an HTTP request this server can read (${err.code ?? err.message})`)];
  return rawErrorResponse(status, reason, error);
}

/** A socket file nobody answers on is what a killed server left: remove it. One that answers is another server's. */
async function clearStaleSocket(path: string): Promise<void> {
  const answered = await new Promise<boolean>((resolve) => {
    const sock = connect(path);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
  if (answered) {
    throw new SkiffError("ERR_SKIFF_PORT_IN_USE", `another server listens on ${path}`, { place: "listen", hint: "stop it, or give another --listen" });
  }
  await rm(path, { force: true });
}

function listenError(err: unknown, where: string): SkiffError {
  const code = (err as { code?: string }).code;
  if (code === "EADDRINUSE") return new SkiffError("ERR_SKIFF_PORT_IN_USE", `${where} is in use`, { place: "listen", hint: "give another --listen", cause: err });
  const why = err instanceof Error ? err.message : String(err);
  return new SkiffError("ERR_SKIFF_HOST", `cannot listen on ${where}: ${why}`, { place: "listen", cause: err });
}

/**
 * An HTTP proxy in front of a test registry that misbehaves on request:
 * flips a byte in a blob (wrong digest), cuts the connection half-way
 * through one (dropped mid-blob), stalls half-way (for cancellation), or
 * redirects blob downloads to a separate "storage" server, as registries on
 * object storage do, which records whether credentials followed. Every
 * request is logged so tests can count them.
 */
import { request as httpRequest, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { closeServer } from "./registry.js";

export type Fault = "corrupt" | "drop" | "stall" | "redirect";

export interface FaultProxy {
  /** "127.0.0.1:PORT": use it as the registry part of a reference. */
  host: string;
  /** "GET /v2/…" for every request the proxy saw. */
  requests: string[];
  /** Requests the storage server saw after a redirect, with the Authorization they carried. */
  storageRequests: Array<{ path: string; authorization: string | undefined }>;
  /** Decide per request; undefined passes it through untouched. */
  fault: (method: string, path: string) => Fault | undefined;
  stop(): Promise<void>;
}

export async function startFaultProxy(target: string, opts: { targetAuthorization?: string } = {}): Promise<FaultProxy> {
  const [targetHost, targetPort] = target.split(":") as [string, string];
  const stalled = new Set<ServerResponse>();
  const proxy: FaultProxy = {
    host: "",
    requests: [],
    storageRequests: [],
    fault: () => undefined,
    stop: async () => {
      for (const res of stalled) res.destroy();
      await closeServer(server);
      await closeServer(storage);
    },
  };

  /** Forward to the registry; hand the answer to `reply` (headers, then the whole body). */
  const forward = (req: IncomingMessage, path: string, headers: IncomingMessage["headers"], reply: (up: IncomingMessage, body: Buffer) => void) => {
    const up = httpRequest({ host: targetHost, port: Number(targetPort), method: req.method, path, headers: { ...headers, host: target } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => reply(res, Buffer.concat(chunks)));
    });
    up.on("error", () => req.socket.destroy());
    req.pipe(up);
  };

  const storage = createServer((req, res) => {
    proxy.storageRequests.push({ path: req.url ?? "", authorization: req.headers.authorization });
    const headers = { ...(opts.targetAuthorization ? { authorization: opts.targetAuthorization } : {}) };
    forward(req, req.url ?? "/", headers, (up, body) => {
      res.writeHead(up.statusCode ?? 502, { "content-type": up.headers["content-type"] ?? "application/octet-stream", "content-length": body.length });
      res.end(body);
    });
  });

  const server: Server = createServer((req, res) => {
    const path = req.url ?? "/";
    proxy.requests.push(`${req.method} ${path}`);
    const fault = proxy.fault(req.method ?? "GET", path);
    if (fault === "redirect") {
      res.writeHead(307, { location: `http://127.0.0.1:${(storage.address() as AddressInfo).port}${path}` }).end();
      return;
    }
    forward(req, path, req.headers, (up, body) => {
      const headers = { ...up.headers };
      if (fault === undefined || up.statusCode !== 200 || body.length < 2) {
        res.writeHead(up.statusCode ?? 502, headers).end(body);
        return;
      }
      delete headers["transfer-encoding"];
      headers["content-length"] = String(body.length);
      res.writeHead(200, headers);
      const half = Math.floor(body.length / 2);
      if (fault === "corrupt") {
        const bad = Buffer.from(body);
        bad[half] = bad[half]! ^ 0xff;
        res.end(bad);
      } else if (fault === "drop") {
        res.write(body.subarray(0, half), () => res.socket?.destroy());
      } else {
        stalled.add(res);
        res.write(body.subarray(0, half));
      }
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

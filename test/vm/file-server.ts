/**
 * A plain HTTP file server on 127.0.0.1 for tests that download (cloud
 * images): each path maps to a file on disk or a buffer; anything else is a
 * 404. It remembers every request, so a test can tell a cache hit from a
 * download.
 */
import { createReadStream, statSync } from "node:fs";
import { join, normalize } from "node:path";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface FileServer {
  /** "http://127.0.0.1:PORT" */
  base: string;
  /** Request paths, in order. */
  requests: string[];
  /** What a path serves; add to it at any time. */
  routes: Map<string, string | Buffer>;
  close(): Promise<void>;
}

export async function serveFiles(): Promise<FileServer> {
  const requests: string[] = [];
  const routes = new Map<string, string | Buffer>();
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const body = routes.get(req.url ?? "");
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const length = typeof body === "string" ? statSync(body).size : body.length;
    res.writeHead(200, { "content-length": length, "content-type": "application/octet-stream" });
    if (typeof body === "string") createReadStream(body).pipe(res);
    else res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    routes,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Every file under `root` by its path (GET and HEAD), e.g. a Debian repository. */
export async function serveDirectory(root: string): Promise<FileServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? "/").split("?")[0]!);
    requests.push(url);
    const path = join(root, normalize(url).replace(/^(\.\.[/\\])+/, ""));
    let size: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new Error("not a file");
      size = st.size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": size, "content-type": "application/octet-stream" });
    if (req.method === "HEAD") res.end();
    else createReadStream(path).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    routes: new Map(),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

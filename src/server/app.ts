/**
 * The HTTP API of `skiff serve` as a hono app: one Skiff behind every route,
 * strict request schemas, coded JSON errors, a body limit, and the OpenAPI
 * 3.1 document made from the same schemas at /openapi.json. The app holds
 * no lock and no state between requests: the CLI keeps working beside it.
 *
 * Other front ends mount here (`mounts`): the MCP server's Streamable HTTP
 * endpoint goes at /mcp, behind the same token.
 */
import { OpenAPIHono, createRoute } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { SkiffError, type Skiff, type VmInfo } from "../index.js";
import { toErrorBody } from "../api/errors.js";
import { errorResponse, errorResponses, json, nameParam, validationHook } from "./http.js";
import { AgentConnections } from "./agents.js";
import { vmRoutes } from "./routes/vms.js";
import { fileRoutes } from "./routes/files.js";
import { resourceRoutes } from "./routes/resources.js";
import { snapshotRoutes } from "./routes/snapshots.js";
import { eventRoutes } from "./routes/events.js";
import { projectRoutes } from "./routes/projects.js";
import { imageImportRoutes } from "./routes/image-import.js";

/** Another app served under a path (e.g. MCP at /mcp): it gets every request below it, after the token check. */
export interface Mount {
  path: string;
  fetch(req: Request): Response | Promise<Response>;
  /** Called when the server shuts down (the MCP mount closes its sessions). */
  close?(): Promise<void>;
}

export interface AppOptions {
  skiff: Skiff;
  /** Checks a request's Authorization header; undefined lets every request through (the unix socket). */
  authorize?: (header: string | undefined) => SkiffError | undefined;
  /** Largest JSON body (default 1 MiB); file uploads stream and have no limit. */
  bodyLimitBytes?: number;
  version?: string;
  mounts?: Mount[];
  /** The agent connections exec holds (default: the app's own, never closed: a server passes its own and closes it). */
  agents?: AgentConnections;
  /** Told the VMs a request that may have set or moved their deadline answered with (deadlines.ts). */
  onDeadline?: (vms: VmInfo[]) => void;
}

/** The requests after which a sandbox's deadline may be new: a start (it counts from there), a restore, a fork, a timeout. */
const movesDeadline = /^\/(vms|snapshots)\/([^/]+\/)?(run|start|restart|restore|fork|timeout)$/;

export const defaultBodyLimit = 1 << 20;

/** Every body is JSON under the limit except a file upload and an image import, which stream. */
export function bodyIsLimited(method: string | undefined, path: string): boolean {
  return !(method === "PUT" && /\/files(\?|$)/.test(path)) && !(method === "POST" && /^\/images\/import(\?|$)/.test(path));
}

export function bodyLimitError(limit: number): SkiffError {
  return new SkiffError("ERR_SKIFF_TOO_LARGE", `the body is larger than ${limit} bytes`, { hint: "files go through PUT /vms/{name}/files, which streams" });
}

export function createApp(opts: AppOptions): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook as never });
  const limit = opts.bodyLimitBytes ?? defaultBodyLimit;

  app.onError((err) => {
    if (err instanceof HTTPException && !(err.cause instanceof SkiffError)) {
      // hono's own refusals: a body that is not JSON, a content type the route does not take.
      const message = err.message === "" ? `HTTP ${err.status}` : err.message;
      return json(toErrorBody(new SkiffError("ERR_SKIFF_USAGE", message.replace(/^Malformed JSON.*/i, "malformed JSON in the body"), { hint: "send a JSON object with Content-Type: application/json" })), 400);
    }
    const res = errorResponse(err instanceof HTTPException ? err.cause : err) as Response;
    // A chunked body found too large while read: the rest is never read, the connection cannot carry another request.
    // (A declared Content-Length over the limit is refused in serve.ts before any of the body is read.)
    if (err instanceof SkiffError && err.code === "ERR_SKIFF_TOO_LARGE") res.headers.set("connection", "close");
    return res;
  });
  app.notFound((c) =>
    json(toErrorBody(new SkiffError("ERR_SKIFF_USAGE", `no route ${c.req.method} ${c.req.path}`, { hint: "GET /openapi.json lists the routes" })), 404),
  );

  if (opts.authorize !== undefined) {
    const authorize = opts.authorize;
    app.use("*", async (c, next) => {
      const refused = authorize(c.req.header("authorization"));
      if (refused !== undefined) return errorResponse(refused);
      await next();
    });
  }
  const limited = bodyLimit({
    maxSize: limit,
    onError: () => {
      throw bodyLimitError(limit);
    },
  });
  app.use("*", async (c, next) => {
    if (!bodyIsLimited(c.req.method, c.req.path)) return next();
    // A body the JSON validators would skip (another content type) is refused rather than ignored.
    const type = c.req.header("content-type");
    const length = c.req.header("content-length");
    const hasBody = (length !== undefined && length !== "0") || c.req.header("transfer-encoding") !== undefined;
    if (hasBody && !/^application\/([a-z0-9.+-]*\+)?json\b/i.test(type ?? "")) {
      throw new SkiffError("ERR_SKIFF_USAGE", `a body of type ${type ?? "(none)"} where JSON was expected`, { hint: "send Content-Type: application/json" });
    }
    return limited(c, next);
  });

  const onDeadline = opts.onDeadline;
  if (onDeadline !== undefined) {
    app.use("*", async (c, next) => {
      await next();
      if (c.req.method !== "POST" || c.res.status >= 300 || !movesDeadline.test(c.req.path)) return;
      // The answer is the VM (a list for a fork; {vm, …} for a run): its labels and start are its deadline.
      const body = (await c.res.clone().json().catch(() => undefined)) as VmInfo | VmInfo[] | { vm: VmInfo } | undefined;
      const vms = Array.isArray(body) ? body : body !== undefined && "vm" in body ? [body.vm] : body === undefined ? [] : [body];
      onDeadline(vms.filter((vm) => vm !== null && typeof vm === "object" && "labels" in vm));
    });
  }
  vmRoutes(app, opts.skiff, opts.agents ?? new AgentConnections(opts.skiff));
  fileRoutes(app, opts.skiff);
  snapshotRoutes(app, opts.skiff);
  resourceRoutes(app, opts.skiff);
  eventRoutes(app, opts.skiff);
  projectRoutes(app, opts.skiff);
  imageImportRoutes(app, opts.skiff);
  webSocketRoutes(app);

  for (const m of opts.mounts ?? []) {
    app.all(m.path, (c) => m.fetch(c.req.raw));
    app.all(`${m.path}/*`, (c) => m.fetch(c.req.raw));
  }

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "skiff",
      version: opts.version ?? "0",
      description: "skiff serve: VMs, exec, files, images, networks, volumes, snapshots, projects. Over TCP every request needs `Authorization: Bearer TOKEN`; the unix socket needs none.",
    },
    security: [{ bearer: [] }],
  });
  return app;
}

/** The WebSocket routes (ws.ts) as the document shows them; a GET without the upgrade is told so. */
function webSocketRoutes(app: OpenAPIHono): void {
  const needsUpgrade = () =>
    json(toErrorBody(new SkiffError("ERR_SKIFF_USAGE", "this route is a WebSocket", { hint: "connect with a WebSocket client (Upgrade: websocket)" })), 426);
  const routes = [
    ["exec", "run a command over a WebSocket: the first text frame {type:start, argv, env, user, cwd, tty, timeoutMs}; then binary frames (byte 0: stream 0 stdin, 1 stdout, 2 stderr) and text frames {type:resize|signal|eof}; the server sends {type:started}, then {type:exit, code, signal} or {type:error, error} after the last output frame"],
    ["console", "the VM's serial console over a WebSocket: bytes both ways as binary frames"],
  ] as const;
  for (const [what, summary] of routes) {
    app.openapi(
      createRoute({
        method: "get",
        path: `/vms/{name}/${what}`,
        tags: [what === "exec" ? "exec" : "vms"],
        summary,
        request: { params: nameParam },
        responses: { 101: { description: "switching to the WebSocket protocol" }, 426: errorResponses[400], ...errorResponses },
      }),
      needsUpgrade,
    );
  }
}

/**
 * Volumes, networks and images. Skiff has methods for volumes; networks and
 * images are still engine functions over the same context (issue 13's "one
 * door" gives Skiff services for them; these calls move there then), loaded
 * when first used as the CLI loads them.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { stream } from "hono/streaming";
import type { Skiff } from "../../index.js";
import { imageInfoSchema, imagePullSchema, networkCreateSchema, networkInfoSchema, okSchema, volumeCreateSchema, volumeInfoSchema } from "../../api/schemas.js";
import { toErrorBody } from "../../api/errors.js";
import { errorResponses, flag, json, jsonBody, jsonResponse, nameParam, type Reply } from "../http.js";

const refParam = z.object({ ref: z.string().min(1).openapi({ param: { name: "ref", in: "path" }, example: "alpine:3.20" }) });

/** ls, create, inspect and rm of one kind of named resource. */
interface Crud {
  kind: "volumes" | "networks";
  info: z.ZodTypeAny;
  create: z.ZodTypeAny;
  ops: {
    list(): Promise<unknown>;
    create(body: never): Promise<unknown>;
    inspect(name: string): Promise<unknown>;
    remove(name: string, force: boolean): Promise<void>;
  };
}

function crudRoutes(app: OpenAPIHono, { kind, info, create, ops }: Crud): void {
  const one = kind.slice(0, -1);
  app.openapi(
    createRoute({ method: "get", path: `/${kind}`, tags: [kind], summary: `list ${kind}`, responses: { 200: jsonResponse(z.array(info), kind), ...errorResponses } }),
    async () => json(await ops.list()),
  );
  app.openapi(
    createRoute({ method: "post", path: `/${kind}`, tags: [kind], summary: `create a ${one}`, request: jsonBody(create), responses: { 201: jsonResponse(info, `the ${one} made`), ...errorResponses } }),
    async (c) => json(await ops.create(c.req.valid("json") as never), 201),
  );
  app.openapi(
    createRoute({ method: "get", path: `/${kind}/{name}`, tags: [kind], summary: `inspect a ${one}`, request: { params: nameParam }, responses: { 200: jsonResponse(info, `the ${one}`), ...errorResponses } }),
    async (c) => json(await ops.inspect(c.req.valid("param").name)),
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: `/${kind}/{name}`,
      tags: [kind],
      summary: `remove a ${one}`,
      request: { params: nameParam, query: z.object({ force: flag }) },
      responses: { 200: jsonResponse(okSchema, "removed"), ...errorResponses },
    }),
    async (c) => {
      await ops.remove(c.req.valid("param").name, c.req.valid("query").force);
      return json({ ok: true });
    },
  );
}

export function resourceRoutes(app: OpenAPIHono, skiff: Skiff): void {
  crudRoutes(app, {
    kind: "volumes",
    info: volumeInfoSchema,
    create: volumeCreateSchema,
    ops: {
      list: () => skiff.listVolumes(),
      create: (body: z.infer<typeof volumeCreateSchema>) => skiff.createVolume(body),
      inspect: (name) => skiff.inspectVolume(name),
      remove: (name, force) => skiff.removeVolume(name, { force }),
    },
  });
  crudRoutes(app, {
    kind: "networks",
    info: networkInfoSchema,
    create: networkCreateSchema,
    ops: {
      list: async () => skiff.networks.list(),
      create: async (body: z.infer<typeof networkCreateSchema>) => skiff.networks.create(body),
      inspect: async (name) => skiff.networks.inspect(name),
      remove: async (name) => skiff.networks.remove(name),
    },
  });
  imageRoutes(app, skiff);
}

function imageRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({ method: "get", path: "/images", tags: ["images"], summary: "list images, newest first", responses: { 200: jsonResponse(z.array(imageInfoSchema), "images"), ...errorResponses } }),
    async () => json(await skiff.images.list()),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/images/pull",
      tags: ["images"],
      summary: "pull an image; the answer streams its progress as JSON lines, ending with {kind: done} or {kind: error}",
      request: jsonBody(imagePullSchema),
      responses: {
        200: { description: 'JSON lines: {"kind":"pull"|"build","event":…}, then {"kind":"done","image":…} or {"kind":"error","error":…}', content: { "application/x-ndjson": { schema: z.string() } } },
        ...errorResponses,
      },
    }),
    async (c): Promise<Reply> => {
      const body = c.req.valid("json") as z.infer<typeof imagePullSchema>;
      c.header("content-type", "application/x-ndjson");
      return stream(c, async (out) => {
        const line = (value: unknown) => void out.write(`${JSON.stringify(value)}\n`);
        try {
          const image = await skiff.images.pull(body.ref, {
            ...(body.platform === undefined ? {} : { platform: body.platform }),
            onPull: (event) => line({ kind: "pull", event }),
            onBuild: (event) => line({ kind: "build", event }),
          });
          line({ kind: "done", image });
        } catch (err) {
          line({ kind: "error", error: toErrorBody(err) });
        }
      });
    },
  );
  app.openapi(
    createRoute({ method: "get", path: "/images/{ref}", tags: ["images"], summary: "inspect an image", request: { params: refParam }, responses: { 200: jsonResponse(imageInfoSchema, "the image"), ...errorResponses } }),
    async (c) => json(await skiff.images.inspect(c.req.valid("param").ref)),
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/images/{ref}",
      tags: ["images"],
      summary: "remove an image (refused while a VM or a snapshot uses it)",
      request: { params: refParam },
      responses: { 200: jsonResponse(imageInfoSchema, "the image removed"), ...errorResponses },
    }),
    async (c) => json(await skiff.images.remove(c.req.valid("param").ref)),
  );
}

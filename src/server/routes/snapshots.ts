/** Snapshots: take one of a running VM, list, inspect, remove, restore one into a new VM, fork a VM. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Skiff } from "../../index.js";
import { forkSchema, restoreSchema, snapshotCreateSchema, snapshotInfoSchema, vmInfoSchema, type RestoreBody } from "../../api/schemas.js";
import { errorResponses, flag, json, jsonBody, jsonResponse, nameParam } from "../http.js";

const refParam = z.object({ ref: z.string().min(1).openapi({ param: { name: "ref", in: "path" }, description: "snapshot id, id prefix or name" }) });

export function snapshotRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/vms/{name}/snapshots",
      tags: ["snapshots"],
      summary: "snapshot a running VM (memory, devices, disk); it runs on",
      request: { params: nameParam, ...jsonBody(snapshotCreateSchema, false) },
      responses: { 201: jsonResponse(snapshotInfoSchema, "the snapshot"), ...errorResponses },
    }),
    async (c) => json(await skiff.snapshot(c.req.valid("param").name, (c.req.valid("json") as z.infer<typeof snapshotCreateSchema> | undefined) ?? {}), 201),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/vms/{name}/fork",
      tags: ["snapshots"],
      summary: "N live clones of a running VM",
      request: { params: nameParam, ...jsonBody(forkSchema, false) },
      responses: { 201: jsonResponse(z.array(vmInfoSchema), "the clones"), ...errorResponses },
    }),
    async (c) => json(await skiff.fork(c.req.valid("param").name, (c.req.valid("json") as z.infer<typeof forkSchema> | undefined) ?? {}), 201),
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/snapshots",
      tags: ["snapshots"],
      summary: "list snapshots (of one VM with ?vm=NAME)",
      request: { query: z.object({ vm: z.string().min(1).optional() }) },
      responses: { 200: jsonResponse(z.array(snapshotInfoSchema), "snapshots, oldest first"), ...errorResponses },
    }),
    async (c) => json(await skiff.listSnapshots(c.req.valid("query").vm)),
  );
  app.openapi(
    createRoute({ method: "get", path: "/snapshots/{ref}", tags: ["snapshots"], summary: "inspect a snapshot", request: { params: refParam }, responses: { 200: jsonResponse(snapshotInfoSchema, "the snapshot"), ...errorResponses } }),
    async (c) => json(await skiff.inspectSnapshot(c.req.valid("param").ref)),
  );
  app.openapi(
    createRoute({
      method: "delete",
      path: "/snapshots/{ref}",
      tags: ["snapshots"],
      summary: "remove a snapshot (one VMs stand on only with ?force=true, which removes them too)",
      request: { params: refParam, query: z.object({ force: flag }) },
      responses: { 200: jsonResponse(snapshotInfoSchema, "the snapshot removed"), ...errorResponses },
    }),
    async (c) => json(await skiff.removeSnapshot(c.req.valid("param").ref, { force: c.req.valid("query").force })),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/snapshots/{ref}/restore",
      tags: ["snapshots"],
      summary: "a new running VM from a snapshot",
      request: { params: refParam, ...jsonBody(restoreSchema, false) },
      responses: { 201: jsonResponse(vmInfoSchema, "the VM"), ...errorResponses },
    }),
    async (c) => json(await skiff.restore(c.req.valid("param").ref, (c.req.valid("json") as RestoreBody | undefined) ?? {}), 201),
  );
}

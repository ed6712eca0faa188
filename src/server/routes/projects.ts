/**
 * Projects (skiff.yml, pontoon.yml, VMFile.kdl, compose.yaml) over HTTP:
 * docker compose's verbs as `skiff up`/`down`/`ps`/`stop`… run them, on
 * src/project's Project. A request names its project by a file on the
 * server, a file's text posted with its server directory, or, where the
 * VMs' labels suffice, a name (project-source.ts).
 *
 * The verbs that change things answer with JSON lines as POST /images/pull
 * does: the file's warnings, then the verb's task and provisioner-output
 * events as they happen, then {kind: done} or {kind: error}. A project that
 * cannot be read is refused before the stream starts, as a plain coded
 * error whose field is the file's place (skiff.yml:3:5). `up` is always
 * detached: it answers once everything is up; a client that goes away
 * does not stop it.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { stream } from "hono/streaming";
import { qemuRuns } from "../../pure.js";
import type { Skiff } from "../../index.js";
import { toErrorBody } from "../../api/errors.js";
import {
  projectDownSchema,
  projectListSchema,
  projectPsSchema,
  projectServicesSchema,
  projectUpSchema,
  type ProjectDownBody,
  type ProjectSource,
  type ProjectUpBody,
} from "../../api/project-schemas.js";
import { vmInfoSchema } from "../../api/schemas.js";
import type { Project } from "../../project/project.js";
import { labels } from "../../project/names.js";
import { errorResponses, flag, json, jsonBody, jsonResponse, nameParam, type Reply } from "../http.js";
import { openProject, type OpenedProject } from "../project-source.js";

const serviceStatusSchema = z
  .object({ service: z.string(), vm: vmInfoSchema, health: z.enum(["healthy", "unhealthy"]).optional() })
  .openapi("ServiceStatus");

/** The lines a project verb's answer streams. */
function linesDescription(result: string): string {
  return `JSON lines: {"kind":"warning","warning":{message,place}} for the file's ignored keys, {"kind":"task","event":{task,state,message,elapsedMs}} and {"kind":"output","event":{vm,stream,text}} as the verb works, then {"kind":"done","project":NAME,"result":${result}} or {"kind":"error","error":{code,message,hint,field}}`;
}

const streamed = (result: string) => ({
  200: { description: linesDescription(result), content: { "application/x-ndjson": { schema: z.string() } } },
  ...errorResponses,
});

/** Run `verb` on the opened project, streaming its events and its end as JSON lines. */
function streamVerb(c: Context, opened: OpenedProject, verb: (p: Project) => Promise<unknown>): Reply {
  const { project, warnings } = opened;
  c.header("content-type", "application/x-ndjson");
  return stream(c, async (out) => {
    const line = (value: unknown) => void out.write(`${JSON.stringify(value)}\n`);
    for (const warning of warnings) line({ kind: "warning", warning });
    project.on("task", (event) => line({ kind: "task", event }));
    project.on("output", (event) => line({ kind: "output", event }));
    try {
      line({ kind: "done", project: project.spec.name, result: await verb(project) });
    } catch (err) {
      line({ kind: "error", error: toErrorBody(err) });
    }
  });
}

/** docker compose's verbs on existing VMs: the Project method each runs, and what it does to them. */
const lifecycle = [
  ["stop", "the services' VMs stop; their disks stay"],
  ["start", "the services' stopped VMs start again"],
  ["restart", "the services' VMs stop and start"],
  ["pause", "the services' guests are paused, their memory kept"],
  ["unpause", "the services' paused guests run on"],
] as const;

export function projectRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/projects/up",
      tags: ["projects"],
      summary: "create and start a project's VMs (skiff up -d): networks, volumes, layer builds, provisioning; answers as JSON lines once everything is up",
      request: jsonBody(projectUpSchema),
      responses: streamed("{vms:[{name,service,action}]}"),
    }),
    async (c): Promise<Reply> => {
      const { services, build, noProvision, wait, removeOrphans, ...source } = c.req.valid("json") as ProjectUpBody;
      const opened = await openProject(skiff, source, true);
      return streamVerb(c, opened, (p) =>
        p.up({ ...(services === undefined ? {} : { services }), build: build === true, noProvision: noProvision === true, wait: wait === true, removeOrphans: removeOrphans === true }),
      );
    },
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/projects/down",
      tags: ["projects"],
      summary: "stop and remove a project's VMs and networks (skiff down); volumes too with volumes, built images too with destroy",
      request: jsonBody(projectDownSchema),
      responses: streamed("{vms,networks,volumes,images}"),
    }),
    async (c): Promise<Reply> => {
      const { volumes, destroy, ...source } = c.req.valid("json") as ProjectDownBody;
      return streamVerb(c, await openProject(skiff, source), (p) => p.down({ volumes: volumes === true, destroy: destroy === true }));
    },
  );
  for (const [verb, summary] of lifecycle) {
    app.openapi(
      createRoute({ method: "post", path: `/projects/${verb}`, tags: ["projects"], summary: `skiff compose ${verb}: ${summary}`, request: jsonBody(projectServicesSchema), responses: streamed("[VM names]") }),
      async (c): Promise<Reply> => {
        const { services, ...source } = c.req.valid("json") as ProjectSource & { services?: string[] };
        return streamVerb(c, await openProject(skiff, source), (p) => p[verb](services ?? []));
      },
    );
  }
  psRoutes(app, skiff);
}

function psRoutes(app: OpenAPIHono, skiff: Skiff): void {
  const rows = jsonResponse(z.array(serviceStatusSchema), "the project's VMs, with health where a service has a healthcheck");
  app.openapi(
    createRoute({ method: "post", path: "/projects/ps", tags: ["projects"], summary: "a project's VMs (skiff compose ps): by its file, health included", request: jsonBody(projectPsSchema), responses: { 200: rows, ...errorResponses } }),
    async (c) => {
      const { all, ...source } = c.req.valid("json") as ProjectSource & { all?: boolean };
      return json(await (await openProject(skiff, source)).project.ps({ all: all === true }));
    },
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/projects/{name}",
      tags: ["projects"],
      summary: "a project's VMs by its name (its VMs' labels; no health: that needs the file, POST /projects/ps)",
      request: { params: nameParam, query: z.object({ all: flag }) },
      responses: { 200: rows, ...errorResponses },
    }),
    async (c) => json(await (await openProject(skiff, { name: c.req.valid("param").name })).project.ps({ all: c.req.valid("query").all })),
  );
  app.openapi(
    createRoute({ method: "get", path: "/projects", tags: ["projects"], summary: "the projects that have VMs here (skiff compose ls)", responses: { 200: jsonResponse(projectListSchema, "projects by name"), ...errorResponses } }),
    async () => {
      const byName = new Map<string, { name: string; vms: number; running: number }>();
      for (const vm of await skiff.list({ all: true })) {
        const name = vm.labels[labels.project];
        if (name === undefined) continue;
        const entry = byName.get(name) ?? { name, vms: 0, running: 0 };
        entry.vms += 1;
        if (qemuRuns(vm.state)) entry.running += 1;
        byName.set(name, entry);
      }
      return json([...byName.values()].sort((a, b) => a.name.localeCompare(b.name)));
    },
  );
}

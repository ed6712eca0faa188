/**
 * REST for VMs: list, create, inspect, rm, and the lifecycle verbs, each one
 * call of the library; exec on the server's held agent connection
 * (agents.ts), which every verb that changes the VM's life drops; a new
 * deadline for a sandbox (deadlines.ts enforces it, told by app.ts).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { CreateOptions, RunVmOptions, Skiff } from "../../index.js";
import { SkiffError, restrictUserNetByDefault } from "../../pure.js";
import {
  createVmSchema,
  execResultSchema,
  execSchema,
  killVmSchema,
  okSchema,
  portForwardSchema,
  runResultSchema,
  runVmSchema,
  startVmSchema,
  stopVmSchema,
  timeoutVmSchema,
  vmInfoSchema,
  type CreateVmBody,
  type RunVmBody,
} from "../../api/schemas.js";
import { deadlineLabel } from "../../api/deadline.js";
import type { AgentConnections } from "../agents.js";
import { errorResponses, flag, json, jsonBody, jsonResponse, nameParam } from "../http.js";

const vmResponse = { 200: jsonResponse(vmInfoSchema, "the VM after the verb"), ...errorResponses };

/** A lifecycle verb on one VM: POST /vms/{name}/VERB with an optional body. */
function verbRoute(verb: string, summary: string, body: z.ZodTypeAny = z.object({}).strict()) {
  return createRoute({
    method: "post",
    path: `/vms/{name}/${verb}`,
    tags: ["vms"],
    summary,
    // Optional: no body (or no JSON content type) is `{}`.
    request: { params: nameParam, ...jsonBody(body, false) },
    responses: vmResponse,
  });
}

/**
 * The API's network shape → the library's (a user NIC's `restrict` defaults as the host's skiff does: the
 * library's own default is unrestricted, so a body without `network` gets the user NIC written out, as the CLI does).
 */
export function toCreateOptions(body: CreateVmBody): CreateOptions {
  const { network, ...rest } = body;
  if (network === undefined) return restrictUserNetByDefault() ? { ...rest, network: { mode: "user", restrict: true, forwards: [] } } : rest;
  if (network.mode === "none") return { ...rest, network };
  return { ...rest, network: { mode: "user", restrict: network.restrict ?? restrictUserNetByDefault(), forwards: network.forwards ?? [] } };
}

/** A run body → Skiff.run's two arguments: argv is the image's command, or (with `from`) the snapshot VM's. */
export function toRunArgs(body: RunVmBody): [CreateOptions, RunVmOptions] {
  const { argv, detach, rm, from, cold, image, ...create } = body;
  if ((image === undefined) === (from === undefined)) {
    throw new SkiffError("ERR_SKIFF_USAGE", from === undefined ? "run needs an image or a snapshot to start from" : "give an image or a snapshot (from), not both", {
      place: from === undefined ? "image" : "from",
      hint: 'e.g. {"image": "base", "argv": ["uname", "-r"]}',
    });
  }
  const autoRemove = rm === true || create.autoRemove === true;
  const options = toCreateOptions({ ...create, image: image ?? "base", ...(from === undefined && argv !== undefined ? { command: argv } : {}), autoRemove });
  const run: RunVmOptions = {
    ...(from === undefined ? {} : { from, ...(argv === undefined ? {} : { argv }) }),
    ...(detach === undefined ? {} : { detach }),
    ...(cold === undefined ? {} : { cold }),
  };
  return [options, run];
}

/** `verb` on the VM, then its held connection dropped (also when the verb failed half-way): the next exec connects again. */
async function changing<T>(agents: AgentConnections, name: string, verb: () => Promise<T>): Promise<T> {
  try {
    return await verb();
  } finally {
    agents.drop(name);
  }
}

export function vmRoutes(app: OpenAPIHono, skiff: Skiff, agents: AgentConnections): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/vms",
      tags: ["vms"],
      summary: "list VMs (running ones, or all with ?all=true), as `skiff ps`",
      request: { query: z.object({ all: flag }) },
      responses: { 200: jsonResponse(z.array(vmInfoSchema), "the VMs"), ...errorResponses },
    }),
    async (c) => json(await skiff.list({ all: c.req.valid("query").all })),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/vms",
      tags: ["vms"],
      summary: "create a VM (not started), as `skiff create`",
      request: jsonBody(createVmSchema),
      responses: { 201: jsonResponse(vmInfoSchema, "the VM made"), ...errorResponses },
    }),
    async (c) => json(await skiff.create(toCreateOptions(c.req.valid("json") as CreateVmBody)), 201),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/vms/run",
      tags: ["vms"],
      summary: "create (or restore `from`), start and run a command, as `skiff run`: in the foreground the reply carries its exit code and output and the VM is stopped (removed with rm); detached, the VM keeps running and the reply is the VM as it runs",
      request: jsonBody(runVmSchema),
      responses: { 200: jsonResponse(runResultSchema, "the VM, and in the foreground the command's exit code and output"), ...errorResponses },
    }),
    async (c) => {
      const result = await skiff.run(...toRunArgs(c.req.valid("json") as RunVmBody));
      // Detached, the VM as it runs now (Skiff.run gives it as it was made, before its start).
      return json(result.code === undefined ? { ...result, vm: await skiff.inspect(result.vm.name) } : result);
    },
  );

  app.openapi(
    createRoute({ method: "get", path: "/vms/{name}", tags: ["vms"], summary: "inspect a VM", request: { params: nameParam }, responses: vmResponse }),
    async (c) => json(await skiff.inspect(c.req.valid("param").name)),
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/vms/{name}",
      tags: ["vms"],
      summary: "remove a VM (a running one with ?force=true), as `skiff rm`",
      request: { params: nameParam, query: z.object({ force: flag }) },
      responses: { 200: jsonResponse(okSchema, "removed"), ...errorResponses },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      await changing(agents, name, () => skiff.remove(name, { force: c.req.valid("query").force }));
      return json({ ok: true });
    },
  );

  app.openapi(verbRoute("start", "start a VM and wait until its guest answers", startVmSchema), async (c) => {
    const { name } = c.req.valid("param");
    return json(await changing(agents, name, () => skiff.start(name, c.req.valid("json") as z.infer<typeof startVmSchema>)));
  });
  app.openapi(verbRoute("stop", "stop a VM (powerdown, then signals), or hibernate it", stopVmSchema), async (c) => {
    const { name } = c.req.valid("param");
    return json(await changing(agents, name, () => skiff.stop(name, c.req.valid("json") as z.infer<typeof stopVmSchema>)));
  });
  app.openapi(verbRoute("restart", "stop and start a VM", stopVmSchema), async (c) => {
    const { name } = c.req.valid("param");
    const { timeoutMs } = c.req.valid("json") as z.infer<typeof stopVmSchema>;
    return json(await changing(agents, name, () => skiff.restart(name, timeoutMs === undefined ? {} : { stopTimeoutMs: timeoutMs })));
  });
  app.openapi(verbRoute("kill", "signal a VM's QEMU (default SIGKILL)", killVmSchema), async (c) => {
    const { name } = c.req.valid("param");
    return json(await changing(agents, name, () => skiff.kill(name, c.req.valid("json") as z.infer<typeof killVmSchema>)));
  });
  app.openapi(verbRoute("pause", "pause a VM's guest (QMP stop)"), async (c) => {
    const { name } = c.req.valid("param");
    return json(await changing(agents, name, () => skiff.pause(name)));
  });
  app.openapi(verbRoute("unpause", "let a paused guest run again"), async (c) => {
    const { name } = c.req.valid("param");
    return json(await changing(agents, name, () => skiff.unpause(name)));
  });
  app.openapi(
    verbRoute(
      "timeout",
      "remove the VM timeoutMs from now, whether or not a client is still there (0: never); the deadline is a label (skiff.sdk.timeout-ms, counted from the VM's start) that the server watches, as Sandbox.create's timeoutMs and sandbox.setTimeout",
      timeoutVmSchema,
    ),
    async (c) => {
      const { name } = c.req.valid("param");
      const { timeoutMs } = c.req.valid("json") as z.infer<typeof timeoutVmSchema>;
      return json(await skiff.setLabels(name, deadlineLabel(await skiff.inspect(name), timeoutMs)));
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/vms/{name}/exec",
      tags: ["exec"],
      summary: "run one command to its end and collect its output (GET with a WebSocket upgrade streams instead)",
      request: { params: nameParam, ...jsonBody(execSchema) },
      responses: { 200: jsonResponse(execResultSchema, "exit code and output"), ...errorResponses },
    }),
    async (c) => {
      const { argv, ...run } = c.req.valid("json") as z.infer<typeof execSchema>;
      const r = await agents.use(c.req.valid("param").name, (conn) => conn.run(argv, run));
      return json({ code: r.code, ...(r.signal === undefined ? {} : { signal: r.signal }), stdout: r.stdout, stderr: r.stderr });
    },
  );

  const forwards = jsonResponse(z.array(portForwardSchema.extend({ origin: z.enum(["spec", "runtime"]) })), "the VM's port forwards");
  app.openapi(
    createRoute({ method: "get", path: "/vms/{name}/ports", tags: ["vms"], summary: "a VM's port forwards (host -> guest), as `skiff port`", request: { params: nameParam }, responses: { 200: forwards, ...errorResponses } }),
    async (c) => json(await skiff.listForwards(c.req.valid("param").name)),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/vms/{name}/ports",
      tags: ["vms"],
      summary: "add a port forward to a running VM, or remove one added so (remove=true), as `skiff port-forward`; the reply is its forwards after",
      request: { params: nameParam, ...jsonBody(z.object({ forward: portForwardSchema, remove: z.boolean().optional() }).strict()) },
      responses: { 200: forwards, ...errorResponses },
    }),
    async (c) => {
      const { forward, remove } = c.req.valid("json") as { forward: z.infer<typeof portForwardSchema>; remove?: boolean };
      return json(await skiff.changeForward(c.req.valid("param").name, forward, { remove: remove === true }));
    },
  );
}

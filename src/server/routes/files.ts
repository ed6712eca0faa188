/**
 * Files in and out of a running VM (one file: the agent's file operations,
 * skiff's own protocol or SFTP for an SSH guest; or a tar as `skiff cp -`
 * makes and takes), and its console log. Bodies stream: nothing is
 * held whole in the server's memory.
 */
import { Readable, PassThrough } from "node:stream";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { SkiffError, type AgentConnection, type GuestStat, type Skiff } from "../../index.js";
import { okSchema } from "../../api/schemas.js";
import { errorResponses, flag, json, jsonResponse, nameParam, type Reply } from "../http.js";

const guestPath = z.string().regex(/^\//, "an absolute path in the guest").openapi({ example: "/etc/hostname" });
const format = z.enum(["file", "tar"]).default("file");

/** What is at `path`, or ERR_SKIFF_FILE_NOT_FOUND. */
async function mustStat(conn: AgentConnection, path: string): Promise<GuestStat> {
  const st = await conn.stat(path);
  if (st === undefined) throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `no such file in the guest: ${path}`, { place: "path" });
  return st;
}

/** A web body as a Node stream (an absent body is empty). */
function bodyStream(req: Request): Readable {
  return req.body === null ? Readable.from([]) : Readable.fromWeb(req.body as import("node:stream/web").ReadableStream<Uint8Array>);
}

function streamResponse(stream: Readable, headers: Record<string, string>): Reply {
  return new Response(Readable.toWeb(stream) as ReadableStream, { status: 200, headers });
}

export function fileRoutes(app: OpenAPIHono, skiff: Skiff): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/vms/{name}/files",
      tags: ["files"],
      summary: "read a file (format=file) or a tar of a file or directory (format=tar) from a running VM",
      request: { params: nameParam, query: z.object({ path: guestPath, format }) },
      responses: {
        200: { description: "the file's bytes, or a tar named by the path's base name", content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } },
        ...errorResponses,
      },
    }),
    async (c) => {
      const { path, format: fmt } = c.req.valid("query");
      const conn = await skiff.connect(c.req.valid("param").name);
      try {
        const st = await mustStat(conn, path);
        const out = new PassThrough();
        const close = () => void conn.close();
        out.on("close", close);
        if (fmt === "tar") {
          conn.copyOutTar(path, out).then(
            () => out.end(),
            (err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))),
          );
          return streamResponse(out, { "content-type": "application/x-tar" });
        }
        if (st.isDirectory) {
          throw new SkiffError("ERR_SKIFF_BAD_PATH", `${path} is a directory in the guest`, { place: "path", hint: "ask for format=tar to get a directory" });
        }
        if (!st.isFile) throw new SkiffError("ERR_SKIFF_BAD_PATH", `${path} is not a regular file in the guest`, { place: "path", hint: "ask for format=tar" });
        conn.readFile(path, out).then(
          () => out.end(),
          (err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))),
        );
        return streamResponse(out, { "content-type": "application/octet-stream", "content-length": String(st.size) });
      } catch (err) {
        await conn.close();
        throw err;
      }
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/vms/{name}/files",
      tags: ["files"],
      summary: "write a file (format=file; its parent must exist) or unpack a tar into an existing directory (format=tar)",
      request: {
        params: nameParam,
        query: z.object({ path: guestPath, format, mode: z.string().regex(/^[0-7]{3,4}$/, "an octal mode such as 0644").optional() }),
        body: { content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } },
      },
      responses: { 200: jsonResponse(okSchema, "written"), ...errorResponses },
    }),
    async (c) => {
      const { path, format: fmt, mode } = c.req.valid("query");
      const body = bodyStream(c.req.raw);
      const conn = await skiff.connect(c.req.valid("param").name);
      try {
        if (fmt === "tar") {
          if (!(await mustStat(conn, path)).isDirectory) throw new SkiffError("ERR_SKIFF_BAD_PATH", `${path} is not a directory in the guest`, { place: "path" });
          await conn.copyInTar(body, path);
        } else {
          await conn.writeFile(path, body, mode === undefined ? undefined : parseInt(mode, 8));
        }
        return json({ ok: true });
      } finally {
        await conn.close();
      }
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/vms/{name}/logs",
      tags: ["vms"],
      summary: "the VM's serial console log (provision=true: its provisioners' log); with follow=true it streams until the VM stops or the client leaves",
      request: { params: nameParam, query: z.object({ follow: flag, lines: z.coerce.number().int().min(0).optional(), provision: flag }) },
      responses: { 200: { description: "the log", content: { "text/plain": { schema: z.string() } } }, ...errorResponses },
    }),
    async (c) => {
      const name = c.req.valid("param").name;
      const { follow, lines, provision } = c.req.valid("query");
      const stream = await skiff.logs(name, { follow, provision, ...(lines === undefined ? {} : { lines }), signal: c.req.raw.signal });
      return streamResponse(stream, { "content-type": "text/plain; charset=utf-8" });
    },
  );
}
